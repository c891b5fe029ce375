"""The same pipeline on a local Spark session (issue 12): `insiders run --engine spark` over the real Parquet file,
read where it lies, gives the PostgreSQL run's features customer by customer, its segments and its Insiders.

Each run is its own `insiders` process, as a user starts it, so the Spark run's JVM ends with it; the Spark tables
are plain Parquet under the test's warehouse and are read back here with pyarrow, without a second Spark session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg
import pyarrow.parquet as pq
import pytest
import yaml

from insiders.dbt_runner import dbt_target_path, run_tool
from insiders.engines import SparkTarget, dbt_target
from insiders.errors import InsidersError
from insiders.load import COLUMN_ALIASES, DATE_FORMATS
from insiders.locks import spark_warehouse_lock
from insiders.settings import Paths

from .conftest import PROJECT_DIR
from .test_dbt_unit_tests import declared_unit_tests

AS_OF = date(2011, 12, 9)
# the README's figures for the real file at its last date (the seeds' cleaning rules)
REAL_CUSTOMERS = 4_329
REAL_GROSS_REVENUE = Decimal("8595618.83")
# columns whose values are money (compared to the cent); other decimals to the last place their column stores
MONEY = {"gross_revenue", "returned_value", "net_revenue", "avg_ticket", "avg_unit_price", "gross_revenue_90d",
         "gross_revenue_365d", "returned_value_90d", "returned_value_365d", "decayed_revenue", "clv_monetary"}


def test_spark_reads_files_with_the_loaders_rules():
    """The column spellings and date formats Spark applies in SQL (dbt_project.yml vars) are the loader's."""
    project_vars = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert {name: tuple(spellings) for name, spellings in project_vars["invoice_file_columns"].items()} \
        == COLUMN_ALIASES
    assert tuple(strptime for strptime, _ in project_vars["invoice_date_formats"]) == DATE_FORMATS


def test_the_engine_names_the_dbt_target(tmp_path):
    paths = Paths(project_dir=PROJECT_DIR, state_dir=tmp_path)
    (tmp_path / "invoices.parquet").touch()
    target = dbt_target("spark", paths, [tmp_path / "invoices.parquet"])
    assert isinstance(target, SparkTarget)
    env = target.dbt_env()
    assert env["INSIDERS_TARGET"] == "spark"
    assert env["INSIDERS_SPARK_DIR"] == str(tmp_path / "spark")
    assert Path(env["INSIDERS_INVOICE_PATH"]).is_absolute()


def test_a_second_spark_run_on_the_same_warehouse_refuses_with_no_wait(tmp_path):
    """The Derby metastore admits one session: a second run says who holds the warehouse instead of failing
    inside Spark (the lock is taken before Spark starts, so this needs no JVM)."""
    with spark_warehouse_lock(tmp_path / "spark", "run --engine spark"):
        result = subprocess.run(
            [sys.executable, "-m", "insiders.cli", "run", "--engine", "spark", "--input", "invoices.parquet",
             "--no-wait"], env={**os.environ, "INSIDERS_STATE_DIR": str(tmp_path)}, capture_output=True, text=True,
            timeout=120, check=False)
    assert result.returncode == 1
    assert f"insiders run --engine spark (pid {os.getpid()}) is using the Spark warehouse" in result.stderr
    assert "not waiting (--no-wait)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_input_is_named_before_spark_starts(tmp_path):
    paths = Paths(project_dir=PROJECT_DIR, state_dir=tmp_path)
    with pytest.raises(InsidersError, match=r"missing\.parquet: no such file or directory"):
        dbt_target("spark", paths, [tmp_path / "missing.parquet"])


# what runs on Spark over the Python job's ml tables (issue 12), and what stays PostgreSQL's
SPARK_MARTS_OVER_ML = {"stg_ml__customer_segments", "stg_ml__customer_forecasts", "stg_ml__model_runs",
                       "stg_ml__insider_rules", "stg_ml__hypothesis_tests", "stg_ml__backtests",
                       "stg_ml__forecast_backtests", "fct_customer_segments", "dim_customers", "fct_segment_summary",
                       "fct_segment_transitions", "fct_segment_memberships", "latest_customer_segments",
                       "latest_segment_summary", "rpt_insiders", "rpt_insider_changes", "rpt_insider_choice",
                       "rpt_insider_rules", "rpt_hypotheses", "rpt_backtests", "rpt_data_quality",
                       "rpt_data_quality_checks"}


@pytest.fixture(scope="module")
def spark_manifest(tmp_path_factory) -> dict:
    """The project parsed for the Spark target (no Spark session: parsing opens no connection)."""
    paths = Paths(project_dir=PROJECT_DIR, state_dir=tmp_path_factory.mktemp("spark-parse"))
    (paths.state_dir / "invoices.parquet").touch()
    target = dbt_target("spark", paths, [paths.state_dir / "invoices.parquet"])
    result = run_tool(paths, target, "dbt", ["parse", "--no-partial-parse"], quiet=True)
    assert result.returncode == 0, result.stdout[-3000:]
    return json.loads((dbt_target_path(paths) / "manifest.json").read_text())


def _enabled(manifest: dict, resource_type: str) -> set[str]:
    return {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == resource_type}


def _disabled(manifest: dict) -> set[str]:
    return {node["name"] for versions in manifest["disabled"].values() for node in versions}


def test_spark_builds_the_segment_marts_and_reports_over_the_ml_tables(spark_manifest):
    models = _enabled(spark_manifest, "model")
    assert SPARK_MARTS_OVER_ML - models == set()
    assert {source["name"] for source in spark_manifest["sources"].values() if source["source_name"] == "ml"} \
        >= {"model_runs", "customer_segments", "customer_forecasts", "insider_rules", "hypothesis_tests",
            "backtests", "forecast_backtests"}
    # the data tests of those marts run there too
    tested = {node["attached_node"].rsplit(".", 1)[-1] for node in spark_manifest["nodes"].values()
              if node["resource_type"] == "test" and node.get("attached_node")}
    assert {"fct_customer_segments", "dim_customers", "fct_segment_summary", "rpt_insiders"} <= tested
    singular = _enabled(spark_manifest, "test")
    assert {"assert_segment_transitions_balance", "assert_current_marts_present_one_as_of_date",
            "assert_no_label_from_a_later_model", "assert_data_quality_accounts_for_every_line"} <= singular


def test_spark_keeps_the_semantic_layer_and_control_tables_postgresql_only(spark_manifest):
    assert "metricflow_time_spine" not in _enabled(spark_manifest, "model")
    assert "metricflow_time_spine" in _disabled(spark_manifest)
    for kind in ("semantic_models", "metrics", "saved_queries"):
        assert spark_manifest[kind] == {}, kind
    assert {exposure["name"] for exposure in spark_manifest["exposures"].values()} == {"insiders_clustering_job"}
    assert not [source for source in spark_manifest["sources"].values() if source["source_name"] == "control"]
    # nothing enabled on Spark reads a control table (the current as-of date is the as_of_date var there,
    # macro spark__current_as_of_date)
    for node in spark_manifest["nodes"].values():
        assert not [parent for parent in node["depends_on"].get("nodes", []) if ".control." in parent], node["name"]


def test_spark_runs_the_unit_tests_meant_for_it(spark_manifest):
    enabled = {unit_test["name"] for unit_test in spark_manifest["unit_tests"].values()}
    assert enabled == declared_unit_tests("spark")
    assert {"test_dim_customers_streaks_on_spark", "test_insider_changes_entered_and_left_on_spark",
            "test_insider_choice_reads_the_latest_runs_evidence"} <= enabled
    assert "test_insider_changes_at_the_current_as_of_date" not in enabled


def _spark_table(target: SparkTarget, schema: str, table: str):
    """A table of the Spark warehouse (Parquet, partition columns from its directories) as pandas."""
    return pq.read_table(target.spark_dir / "warehouse" / f"spark_{schema}.db" / table).to_pandas()


def _insiders_run(env: dict[str, str], *args: str) -> dict:
    """`insiders run … --json` as a process; its summary."""
    result = subprocess.run([sys.executable, "-m", "insiders.cli", "run", *args, "--json"], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=3600, check=False)
    assert result.returncode == 0, f"insiders run {' '.join(args)} failed: {result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def spark_run(real_data, tmp_path_factory) -> tuple[dict, SparkTarget]:
    """`insiders run --engine spark --input online_retail.parquet` from an empty state directory: its summary, and
    its warehouse."""
    state_dir = tmp_path_factory.mktemp("spark-state")
    summary = _insiders_run({"INSIDERS_STATE_DIR": str(state_dir)}, "--engine", "spark", "--input", str(real_data))
    return summary, SparkTarget(spark_dir=state_dir / "spark")


@pytest.fixture(scope="module")
def spark_features(spark_run) -> SparkTarget:
    return spark_run[1]


@pytest.fixture(scope="module")
def postgres_run(new_database, real_template, real_data, tmp_path_factory):
    """`insiders run --input online_retail.parquet` on PostgreSQL (the template has loaded and built the file, so
    the load finds it loaded): its summary, and its database."""
    target = new_database(template=real_template)
    summary = _insiders_run({"INSIDERS_DSN": target.url,
                             "INSIDERS_STATE_DIR": str(tmp_path_factory.mktemp("postgres-state"))},
                            "--input", str(real_data))
    return summary, target


def test_spark_accounts_for_every_line_as_the_loader_does(spark_features, postgres_run):
    batches = _spark_table(spark_features, "staging", "stg_online_retail__load_batches")
    assert len(batches) == 1
    spark = batches.iloc[0]
    assert spark.lines_read == spark.lines_loaded + spark.lines_duplicate + spark.lines_rejected
    with psycopg.connect(postgres_run[1].url) as conn:
        loaded = conn.execute("select lines_read, lines_loaded, lines_duplicate, lines_rejected, date_format"
                              " from load_batches").fetchall()
    assert loaded == [(spark.lines_read, spark.lines_loaded, spark.lines_duplicate, spark.lines_rejected,
                       spark.date_format)]
    assert spark.lines_read == 541_909


def test_spark_features_equal_postgresql_features(spark_features, postgres_run):
    spark = _spark_table(spark_features, "marts", "fct_customer_features")
    spark["as_of_date"] = spark["as_of_date"].astype(str)
    spark = spark[spark.as_of_date == str(AS_OF)].set_index("customer_id").sort_index()
    with psycopg.connect(postgres_run[1].url) as conn:
        cur = conn.execute("select * from fct_customer_features where as_of_date = %s order by customer_id",
                           (AS_OF,))
        columns = [column.name for column in cur.description]
        postgres = {row[0]: dict(zip(columns, row, strict=True)) for row in cur.fetchall()}

    assert len(spark) == len(postgres) == REAL_CUSTOMERS
    assert list(spark.index) == sorted(postgres)
    assert round(sum(spark.gross_revenue), 2) == REAL_GROSS_REVENUE
    assert round(sum(row["gross_revenue"] for row in postgres.values()), 2) == REAL_GROSS_REVENUE

    differences = []
    for customer_id, row in postgres.items():
        on_spark = spark.loc[customer_id]
        for column, expected in row.items():
            if column in {"customer_id", "as_of_date"}:
                continue
            actual = on_spark[column]
            if isinstance(expected, Decimal) and actual is not None:
                exponent = expected.as_tuple().exponent
                tolerance = Decimal("0.005") if column in MONEY else Decimal(1).scaleb(exponent)
                if abs(Decimal(str(actual)) - expected) > tolerance:
                    differences.append((customer_id, column, expected, actual))
            elif expected != actual and not (expected is None and actual is None):
                differences.append((customer_id, column, expected, actual))
    assert differences == [], f"{len(differences)} values differ, e.g. {differences[:5]}"


def test_spark_daily_sales_equal_postgresql(spark_features, postgres_run):
    spark = _spark_table(spark_features, "marts", "fct_customer_daily_sales")
    with psycopg.connect(postgres_run[1].url) as conn:
        rows, gross = conn.execute("select count(*), sum(gross_revenue) from fct_customer_daily_sales"
                                   " where invoice_date <= %s", (AS_OF,)).fetchone()
    assert len(spark) == rows
    assert round(sum(spark.gross_revenue), 2) == round(gross, 2) == REAL_GROSS_REVENUE


def test_the_spark_run_reports_the_real_files_figures(spark_run):
    summary, _ = spark_run
    assert summary["engine"] == "spark"
    assert summary["as_of"] == str(AS_OF)
    assert summary["customers"] == REAL_CUSTOMERS
    assert Decimal(str(summary["gross_revenue"])) == REAL_GROSS_REVENUE


def test_spark_segments_and_insiders_equal_postgresqls(spark_run, postgres_run):
    """The same features make the same model: the same segments, sizes and names, the same definition and the
    same Insiders, customer by customer; Spark's pandas UDF places each customer where the job's scoring in
    PostgreSQL's run does, with the same confidence and distance."""
    (on_spark, target), (on_postgres, database) = spark_run, postgres_run
    assert on_spark["segments"] == on_postgres["segments"]
    for field in ("model", "insiders", "insider_definition", "insider_customer_share", "insider_revenue_share"):
        assert on_spark[field] == on_postgres[field], field
    spark = _spark_table(target, "ml", "customer_segments")
    spark = spark[spark["as_of_date"].astype(str) == str(AS_OF)].sort_values("customer_id")
    with psycopg.connect(database.url) as conn:
        postgres = conn.execute("select customer_id, segment_id, is_insider, program_rank, confidence,"
                                " distance_to_centroid from ml.customer_segments where as_of_date = %s"
                                " order by customer_id", (AS_OF,)).fetchall()
    assert [tuple(row) for row in spark[["customer_id", "segment_id", "is_insider", "program_rank"]]
            .itertuples(index=False)] == [row[:4] for row in postgres]
    for column, position in (("confidence", 4), ("distance_to_centroid", 5)):
        # both rounded to 6 places when written: the same arithmetic per customer, in blocks of other sizes, may
        # land a value a rounding step away at most
        np.testing.assert_allclose(spark[column].astype(float).to_numpy(),
                                   [float(row[position]) for row in postgres], rtol=0, atol=1.01e-6)


def test_spark_data_quality_report_equals_postgresql(spark_features, postgres_run):
    """rpt_data_quality on Spark, from the file's own accounting, puts as many lines and as much revenue under each
    rule as PostgreSQL's from the loader's, and every line read under one rule."""
    spark = _spark_table(spark_features, "marts", "rpt_data_quality")
    on_spark = {row.rule: (row.n_lines, round(Decimal(str(row.line_revenue)), 2)) for row in spark.itertuples()}
    with psycopg.connect(postgres_run[1].url) as conn:
        rows = conn.execute("select rule, n_lines, line_revenue from rpt_data_quality").fetchall()
    assert on_spark == {rule: (n_lines, round(revenue, 2)) for rule, n_lines, revenue in rows}
    assert sum(n_lines for n_lines, _ in on_spark.values()) == 541_909
