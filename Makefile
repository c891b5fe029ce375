# One entry point. The virtual environment is created on first use and refreshed when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: run test lint unit clean-state bench bench-scale bench-spark

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

## the whole pipeline on the embedded database (demo data unless ARGS="--input FILE")
run: $(STAMP)
	$(BIN)/insiders run $(ARGS)

## lint (ruff, sqlfluff) then every test
test: lint unit

lint: $(STAMP)
	$(BIN)/ruff check python_jobs bench
	$(BIN)/insiders sqlfluff lint models tests/singular

unit: $(STAMP)
	DO_NOT_TRACK=1 $(BIN)/pytest $(ARGS)

## benchmarks print figures (never timed tests): the run on the real file against the seeds, then clustering alone
bench: $(STAMP)
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/clustering_stage.py

## the demo data at 1, 3 and 10 million lines, and one appended day (about 20 minutes)
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

## the same run on PostgreSQL and on Spark, 10 million demo lines (about an hour on 2 cores)
bench-spark: $(STAMP)
	$(BIN)/python bench/spark.py

## stop the embedded database and delete its data
clean-state: $(STAMP)
	-$(BIN)/insiders db stop
	rm -rf .insiders target logs
