"""`insiders backtest --engine spark` (issue 12): the backtest on a local Spark session gives the PostgreSQL
backtest's rows at the same cutoff and horizon, builds each cutoff from the lines up to it only, writes the main
Spark target's ml tables and rpt_backtests, and leaves no scratch schema behind.

Each backtest is its own `insiders` process, as a user starts it (the Spark one's JVM ends with it); the Spark
tables are plain Parquet under the test's warehouse, read back with pyarrow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from insiders.demo_data import generate
from insiders.locks import spark_warehouse_lock

CUTOFF = date(2011, 9, 9)
HORIZON_DAYS = 90
# the smallest input that keeps the backtest meaningful: the demo generator's year (2010-12-01 to 2011-12-09,
# so the Insider choice has its three inner cutoffs before 2011-09-09 and the horizon ends by the last line),
# about a thousand customers, so that a 15% program and its bootstrap intervals are more than a handful
DEMO_LINES = 100_000
DEMO_SEED = 7
# Both engines sum the horizon's revenue exactly (decimals) before it becomes a float, and hand the same feature
# values (read as CSV text on both) to the same Python code with the same seeds: the figures can differ only by
# float rounding in the engines' conversions, many orders of magnitude below this
FLOAT_TOLERANCE = 1e-9


def _backtest(env: dict[str, str], *args: str) -> tuple[dict, str, float]:
    """`insiders backtest … --json` as a process: its result, its stderr and its wall time."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "insiders.cli", "backtest", *args, "--json"],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, f"insiders backtest {' '.join(args)} failed: {result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout), result.stderr, seconds


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo-bt") / "demo_invoices.csv"
    generate(out, n_lines=DEMO_LINES, seed=DEMO_SEED)
    return out


@pytest.fixture(scope="module")
def backtests(demo_csv, new_database, tmp_path_factory) -> dict:
    """The same backtest on each engine, from empty state directories: results, Spark's warehouse and log."""
    window = ("--cutoff", CUTOFF.isoformat(), "--horizon", str(HORIZON_DAYS))
    spark_state = tmp_path_factory.mktemp("spark-bt-state")
    # -v: the scratch build's span of lines is a debug line
    spark, spark_log, spark_seconds = _backtest({"INSIDERS_STATE_DIR": str(spark_state)}, "-v", "--engine", "spark",
                                                "--input", str(demo_csv), *window)
    target = new_database()
    postgres, _, postgres_seconds = _backtest({"INSIDERS_DSN": target.url,
                                               "INSIDERS_STATE_DIR": str(tmp_path_factory.mktemp("pg-bt-state"))},
                                              "--input", str(demo_csv), *window)
    print(f"backtest of {DEMO_LINES:,} demo lines at {CUTOFF}, {HORIZON_DAYS} days: Spark {spark_seconds:.1f} s "
          f"(the cutoff {spark['backtests'][0]['forecast']['seconds']:.1f} s), PostgreSQL {postgres_seconds:.1f} s "
          f"(the cutoff {postgres['backtests'][0]['forecast']['seconds']:.1f} s, the load included in the wall)")
    return {"spark": spark, "postgres": postgres, "spark_dir": spark_state / "spark", "spark_log": spark_log}


@pytest.mark.slow
def test_spark_backtest_gives_the_postgresql_rows(backtests):
    [spark], [postgres] = backtests["spark"]["backtests"], backtests["postgres"]["backtests"]
    assert (spark["cutoff"], spark["horizon_days"]) == (postgres["cutoff"], postgres["horizon_days"]) \
        == (CUTOFF.isoformat(), HORIZON_DAYS)
    assert spark["insider_definition"] == postgres["insider_definition"]
    on_spark = {row["rule"]: row for row in spark["rules"]}
    on_postgres = {row["rule"]: row for row in postgres["rules"]}
    assert set(on_spark) == set(on_postgres) >= {"insiders", "top_past_revenue", "rfm_score", "random"}
    for rule, expected in on_postgres.items():
        actual = on_spark[rule]
        assert actual.keys() == expected.keys()
        assert actual["n_customers"] == expected["n_customers"] > 0, rule
        for field in ("customer_share", "future_revenue_share", "future_revenue_share_low",
                      "future_revenue_share_high", "lift", "precision", "recall", "share_difference_vs_insiders",
                      "share_difference_low", "share_difference_high"):
            assert actual[field] == pytest.approx(expected[field], rel=FLOAT_TOLERANCE, abs=FLOAT_TOLERANCE), \
                (rule, field)
    forecast_fields = set(postgres["forecast"]) - {"seconds"}
    assert forecast_fields >= {"n_customers", "predicted_revenue", "actual_revenue", "revenue_error_share",
                               "purchases_mae", "revenue_mae"}
    for field in forecast_fields:
        assert spark["forecast"][field] == pytest.approx(postgres["forecast"][field], rel=FLOAT_TOLERANCE,
                                                         abs=FLOAT_TOLERANCE), field
    assert postgres["forecast"]["actual_revenue"] > 0


@pytest.mark.slow
def test_spark_scratch_build_holds_only_the_lines_up_to_the_cutoff(backtests):
    spans = re.findall(rf"backtest at {CUTOFF}: the scratch staging holds lines from (\S+) to (\S+)",
                       backtests["spark_log"])
    assert spans, "the scratch build's span of lines was not logged"
    for first, last in spans:
        assert date.fromisoformat(first) < CUTOFF
        assert date.fromisoformat(last) <= CUTOFF  # the demo year goes on to 2011-12-09


@pytest.mark.slow
def test_spark_backtest_writes_the_main_targets_tables_and_drops_its_scratch_schemas(backtests):
    warehouse = backtests["spark_dir"] / "warehouse"
    [spark] = backtests["spark"]["backtests"]
    rows = pq.read_table(warehouse / "spark_ml.db" / "backtests").to_pandas()
    assert sorted(rows["rule"]) == sorted(row["rule"] for row in spark["rules"])
    assert set(rows["cutoff_date"].astype(str)) == {CUTOFF.isoformat()}
    assert set(rows["horizon_days"]) == {HORIZON_DAYS}
    forecast = pq.read_table(warehouse / "spark_ml.db" / "forecast_backtests").to_pandas()
    assert len(forecast) == 1
    assert forecast.iloc[0]["actual_revenue"] == pytest.approx(spark["forecast"]["actual_revenue"])
    report = pq.read_table(warehouse / "spark_marts.db" / "rpt_backtests").to_pandas()
    assert len(report) == len(rows)
    assert report["rule_rank"].min() == 1
    assert sorted(path.name for path in warehouse.iterdir() if path.name.startswith("spark_backtest")) == []


@pytest.mark.slow
def test_spark_backtest_refuses_a_horizon_past_the_last_line(tmp_path):
    tiny = tmp_path / "tiny.csv"
    generate(tiny, n_lines=3_000, seed=DEMO_SEED)
    result = subprocess.run(
        [sys.executable, "-m", "insiders.cli", "backtest", "--engine", "spark", "--input", str(tiny),
         "--cutoff", "2011-11-01", "--horizon", "90"],
        env={**os.environ, "INSIDERS_STATE_DIR": str(tmp_path / "state")}, capture_output=True, text=True,
        timeout=1200, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "the horizon of 90 days after 2011-11-01 ends after the last line (2011-" in result.stderr
    assert "Traceback" not in result.stderr
    # refused before any cutoff was built
    assert not list((tmp_path / "state" / "spark" / "warehouse").glob("spark_backtest*"))


def test_spark_backtest_needs_its_input(tmp_path):
    result = subprocess.run([sys.executable, "-m", "insiders.cli", "backtest", "--engine", "spark", "--cutoff",
                             "2011-09-09"], env={**os.environ, "INSIDERS_STATE_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "give them with --input" in result.stderr
    assert "Traceback" not in result.stderr


def test_spark_backtest_takes_the_warehouses_lock(tmp_path):
    """A Spark backtest waits for (or with --no-wait refuses) another command holding the warehouse, as a Spark
    run does (the lock is taken before Spark starts, so this needs no JVM)."""
    with spark_warehouse_lock(tmp_path / "spark", "run --engine spark"):
        result = subprocess.run(
            [sys.executable, "-m", "insiders.cli", "backtest", "--engine", "spark", "--input", "invoices.csv",
             "--cutoff", "2011-09-09", "--no-wait"], env={**os.environ, "INSIDERS_STATE_DIR": str(tmp_path)},
            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert f"insiders run --engine spark (pid {os.getpid()}) is using the Spark warehouse" in result.stderr
    assert "not waiting (--no-wait)" in result.stderr
    assert "Traceback" not in result.stderr
