"""Data-quality gates with severities: an error (a key, a contract, an impossible value, duplicate lines
miscounted) stops `insiders run` before clustering, named in one line; a warning (an unusual share of rejected,
duplicate or excluded lines against the previous batch, or lines too old for the as-of date) lets the run go on
and appears in its summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest

from insiders.load import load_file
from insiders.stages import build_features, quality_warnings

from .support import QUICK_PROGRAM

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def insiders(target, test_paths, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INSIDERS_DSN": target.url, "INSIDERS_STATE_DIR": str(test_paths.state_dir),
           "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "insiders.cli", *args], env=env, capture_output=True, text=True,
                          check=False)


def _labels_written(target) -> int:
    with psycopg.connect(target.url) as conn:
        if conn.execute("select to_regclass('ml.customer_segments') is null").fetchone()[0]:
            return 0
        return conn.execute("select count(*) from ml.customer_segments").fetchone()[0]


def _write(path: Path, *rows: str) -> Path:
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return path


def _a_line_from_the_future(target, tmp_path: Path) -> Path:
    """A file whose one line is dated decades after it was loaded (a date-format error upstream)."""
    return _write(tmp_path / "future.csv", "581999,85123A,HEART HOLDER,6,2099-01-05 10:00,2.55,17850,United Kingdom")


def _batch_counts_that_do_not_add_up(target, tmp_path: Path) -> Path:
    """A new batch claiming a line as a duplicate that it in fact holds (its accounting broken by hand between
    the load and the build); the run then finds the file loaded and builds."""
    new_day = _write(tmp_path / "new_day.csv",
                     "581998,85123A,HEART HOLDER,6,2011-12-09 12:00,2.55,17850,United Kingdom")
    with psycopg.connect(target.url) as conn:
        load_file(conn, new_day)
        conn.execute("update raw.load_batches set lines_loaded = lines_loaded - 1, lines_duplicate = lines_duplicate"
                     " + 1 where batch_id = (select max(batch_id) from raw.load_batches)")
    return new_day


@pytest.mark.parametrize(("make_error", "failing_test"), [
    (_a_line_from_the_future, "assert_no_line_dated_after_its_load"),
    (_batch_counts_that_do_not_add_up, "assert_load_batches_lines_add_up"),
])
def test_an_error_stops_the_run_before_clustering(demo_mart, test_paths, tmp_path, make_error, failing_test):
    bad_input = make_error(demo_mart, tmp_path)
    result = insiders(demo_mart, test_paths, "run", "--input", str(bad_input), "--as-of", "2011-12-09")
    assert result.returncode == 1, result.stderr
    assert failing_test in result.stderr and "Traceback" not in result.stderr
    assert "segments, forecast and Insiders" not in result.stderr  # the clustering stage never started
    assert _labels_written(demo_mart) == 0


def test_a_batch_of_duplicates_is_a_warning_in_the_run_summary(demo_mart, demo_files, test_paths, tmp_path):
    with demo_files[0].open() as lines:
        repeated = [next(lines) for _ in range(20_001)]  # the header and 20,000 lines already loaded
    part = tmp_path / "first_lines_again.csv"
    part.write_text("".join(repeated))
    result = insiders(demo_mart, test_paths, "run", "--input", str(part), "--as-of", "2011-12-09", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["lines_loaded"] == 0
    duplicates = [warning for warning in summary["warnings"] if warning.startswith("duplicate lines")]
    assert len(duplicates) == 1 and "100.0% of batch 2" in duplicates[0] and "0.0% of batch 1" in duplicates[0]
    assert "data-quality warning" in result.stderr
    assert _labels_written(demo_mart) > 0  # a warning lets the run go on


def test_an_as_of_date_far_after_the_newest_line_is_a_warning(demo_mart, test_paths):
    with psycopg.connect(demo_mart.url) as conn:
        assert quality_warnings(conn) == []
    build_features(test_paths, demo_mart, [date(2012, 3, 31)], QUICK_PROGRAM)
    with psycopg.connect(demo_mart.url) as conn:
        warnings = quality_warnings(conn)
    assert warnings == ["the newest kept line on or before 2012-03-31 is dated 2011-12-09, 113 days earlier"]


def test_an_ordinary_batch_raises_no_warning(demo_mart, test_paths, tmp_path):
    new_day = _write(tmp_path / "new_day.csv",
                     *(f"58{2000 + n},85123A,HEART HOLDER,6,2011-12-09 1{n % 10}:00,2.55,1{7850 + n},United Kingdom"
                       for n in range(50)))
    result = insiders(demo_mart, test_paths, "run", "--input", str(new_day), "--as-of", "2011-12-09", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["warnings"] == []
