"""End-to-end: the CLI's `run` on demo data, and dbt on the real UCI file with independent checks."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import psycopg

from insiders.cli import main
from insiders.dbt_runner import run_dbt
from insiders.load import load_file

REAL_CUSTOMERS = 4_329
REAL_GROSS_REVENUE = Decimal("8595618.83")
REAL_LINES = 541_909
NON_PRODUCT_CODES = {"POST", "D", "DOT", "M", "S", "AMAZONFEE", "m", "DCGSSBOY", "DCGSSGIRL", "PADS", "B", "CRUK"}


def test_run_on_demo_data_builds_the_feature_mart(use_target, test_paths):
    assert main(["run"]) == 0
    with psycopg.connect(use_target.url) as conn:
        customers, as_of = conn.execute(
            "select count(*), max(as_of_date) from marts.fct_customer_features"
            " where as_of_date = (select max(as_of_date) from marts.fct_customer_features)").fetchone()
        assert customers > 4_000
        assert str(as_of) == "2011-12-09"
        lines_read = conn.execute("select sum(lines_read) from raw.load_batches").fetchone()[0]
        counted = conn.execute("select sum(n_lines) from marts.rpt_data_quality").fetchone()[0]
        assert lines_read == counted == 500_000
        segmented = conn.execute("select count(*) from ml.customer_segments").fetchone()[0]
        assert segmented == customers
        summary = conn.execute("select count(*) filter (where not is_insider), sum(n_customers) filter (where not"
                               " is_insider), sum(n_customers) filter (where is_insider)"
                               " from marts.fct_segment_summary").fetchone()
        assert summary[0] >= 4 and summary[1] == customers
        assert summary[2] == round(0.15 * customers)  # the Insiders' row: the program's default size
    # a second run finds the file loaded and leaves one batch
    assert main(["run"]) == 0
    with psycopg.connect(use_target.url) as conn:
        assert conn.execute("select count(*) from raw.load_batches").fetchone()[0] == 1


def test_real_file_loads_whole_and_once(real_data, conn):
    result = load_file(conn, real_data)
    assert (result.lines_read, result.lines_loaded, result.lines_rejected) == (REAL_LINES, REAL_LINES, 0)
    again = load_file(conn, real_data)
    assert again.already_loaded and again.lines_loaded == 0
    assert conn.execute("select count(*) from raw.invoice_lines").fetchone()[0] == REAL_LINES


def test_real_file_features_match_the_reference_figures(real_mart):
    with psycopg.connect(real_mart.url) as conn:
        customers, revenue = conn.execute(
            "select count(*), sum(gross_revenue) from marts.fct_customer_features where as_of_date = '2011-12-09'"
        ).fetchone()
        assert customers == REAL_CUSTOMERS
        assert abs(revenue - REAL_GROSS_REVENUE) <= Decimal("0.01")
        assert conn.execute("select sum(n_lines) from marts.rpt_data_quality").fetchone()[0] == REAL_LINES


def test_real_file_figures_recomputed_from_the_file_itself(real_data):
    """The same reference figures with pandas straight from the parquet: no dbt, no SQL."""
    lines = pd.read_parquet(real_data)
    kept = lines[
        lines["customerid"].notna()
        & (lines["unitprice"] >= 0.04)
        & ~lines["stockcode"].isin(NON_PRODUCT_CODES)
        & ~lines["country"].isin(["Unspecified", "European Community"])
        & (lines["customerid"] != 16446)
    ]
    purchases = kept[kept["quantity"] > 0]
    assert purchases["customerid"].nunique() == REAL_CUSTOMERS
    revenue = (purchases["quantity"] * purchases["unitprice"]).sum()
    assert abs(revenue - float(REAL_GROSS_REVENUE)) <= 0.01


def test_building_a_later_as_of_date_keeps_the_earlier_one(real_mart, test_paths):
    # a full refresh of the history table is refused unless explicitly allowed (test_history.py)
    run_dbt(test_paths, real_mart, ["build", "--select", "fct_customer_features", "--full-refresh",
                                    "--vars", "{as_of_date: '2011-06-30', allow_history_full_refresh: true}"],
            quiet=True)
    query = ("select as_of_date::text, count(*), md5(string_agg(f::text, ',' order by customer_id))"
             " from marts.fct_customer_features as f group by 1 order by 1")
    with psycopg.connect(real_mart.url) as conn:
        before = conn.execute(query).fetchall()
    assert [row[0] for row in before] == ["2011-06-30"]
    run_dbt(test_paths, real_mart, ["build", "--select", "fct_customer_features",
                                    "--vars", "{as_of_date: '2011-12-09'}"], quiet=True)
    with psycopg.connect(real_mart.url) as conn:
        after = conn.execute(query).fetchall()
    assert [row[0] for row in after] == ["2011-06-30", "2011-12-09"]
    assert after[0] == before[0]  # the June rows are untouched
    assert after[1][1] == REAL_CUSTOMERS
