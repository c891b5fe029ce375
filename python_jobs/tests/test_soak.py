"""Soak: the monthly backfill of 2011 over the real file, run three times in a row, leaves the same tables each time:
the same rows, and the same values in every business column (run ids, timestamps and durations aside); the run
log grows by one run per date and no model is fitted again. Slow: it reads the real file; `pytest -m "not slow"`
leaves it out, CI runs it."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from insiders.backfill import backfill, month_ends

from .support import QUICK_PROGRAM

# what differs between two runs that did the same work: who ran it, when, and how long it took (the transitions
# keep the runs of both their dates)
RUN_COLUMNS = {"run_id", "from_run_id", "to_run_id", "model_run_id", "created_at", "measured_at", "loaded_at",
               "batch_loaded_at", "seconds", "fit_seconds", "stage_seconds", "lines_loaded_through"}
SCHEMA_ROLES = ("raw", "intermediate", "marts", "ml")
# the run registry logs every run, one row each, so a backfill run again adds a row per date: it is checked apart
RUN_LOG = "ml.model_runs"


def _fingerprints(target) -> dict[str, tuple[int, str]]:
    """Per table of the pipeline's schemas: its row count and an md5 of its rows' business columns, the rows in
    a stable order."""
    fingerprints = {}
    with psycopg.connect(target.url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
            " and table_schema = any(%s) order by 1, 2", (list(SCHEMA_ROLES),)).fetchall()
        for schema, table in tables:
            columns = [name for (name,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
                " order by ordinal_position", (schema, table))
                if name not in RUN_COLUMNS]
            listed = ", ".join(f'"{name}"' for name in columns)
            count, digest = conn.execute(
                f'select count(*), md5(coalesce(string_agg(row_text, e\'\\n\' order by row_text), \'\'))'
                f' from (select row({listed})::text as row_text from "{schema}"."{table}") as rows'
            ).fetchone()
            fingerprints[f"{schema}.{table}"] = (count, digest)
    return fingerprints


@pytest.mark.slow
def test_three_monthly_backfills_in_a_row_leave_identical_tables(real_mart, test_paths):
    dates = month_ends(date(2011, 1, 1), date(2011, 12, 9))
    rounds = []
    runs = []
    for _ in range(3):
        # the Insider choice without its slowest candidates: what is soaked is the pipeline, run after run
        backfill(test_paths, real_mart, dates, program=QUICK_PROGRAM)
        rounds.append(_fingerprints(real_mart))
        runs.append(_run_log(real_mart))
    assert rounds[0]["marts.fct_customer_segments"][0] > 0
    for later in rounds[1:]:
        changed = {table: (rounds[0].get(table), fingerprint) for table, fingerprint in later.items()
                   if table != RUN_LOG and rounds[0].get(table) != fingerprint}
        assert not changed, changed
    # each later backfill logged one run per date and fitted nothing: the models in force did the labelling
    assert [total for total, _ in runs] == [runs[0][0] + len(dates) * n for n in range(3)]
    assert runs[1][1] == runs[2][1] == runs[0][1] > 0


def _run_log(target) -> tuple[int, int]:
    """Runs logged, and models fitted, so far."""
    with psycopg.connect(target.url) as conn:
        return conn.execute(f"select count(*), count(*) filter (where mode = 'fit') from {RUN_LOG}").fetchone()
