"""The same dbt project on a local Spark session (issue 12): the feature mart built on Spark from the real Parquet file,
read where it lies, equals the PostgreSQL pipeline's (loader, then dbt) customer by customer.

The Spark build runs as its own dbt process (`insiders dbt --engine spark`), so its JVM ends with it; its tables
are plain Parquet under the test's warehouse and are read back here with pyarrow, without a second Spark session.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
import yaml

from insiders.dbt_runner import run_dbt
from insiders.engines import SparkTarget, dbt_target
from insiders.load import COLUMN_ALIASES, DATE_FORMATS
from insiders.settings import Paths

from .conftest import PROJECT_DIR

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
    target = dbt_target("spark", paths, ["invoices.parquet"])
    assert isinstance(target, SparkTarget)
    env = target.dbt_env()
    assert env["INSIDERS_TARGET"] == "spark"
    assert env["INSIDERS_SPARK_DIR"] == str(tmp_path / "spark")
    assert Path(env["INSIDERS_INVOICE_PATH"]).is_absolute()


def _spark_table(target: SparkTarget, schema: str, table: str):
    """A table of the Spark warehouse (Parquet, partition columns from its directories) as pandas."""
    return pq.read_table(target.spark_dir / "warehouse" / f"spark_{schema}.db" / table).to_pandas()


@pytest.fixture(scope="module")
def spark_features(real_data, tmp_path_factory):
    """dbt build on a local Spark session over the real Parquet file, up to the feature marts at AS_OF."""
    paths = Paths(project_dir=PROJECT_DIR, state_dir=tmp_path_factory.mktemp("spark-state"))
    target = dbt_target("spark", paths, [real_data])
    code = run_dbt(paths, target, ["build", "--select", "+fct_customer_features", "+fct_customer_daily_sales",
                                   "stg_online_retail__rejected_invoice_lines",
                                   "--vars", f"{{as_of_date: '{AS_OF}'}}"], check=False, quiet=True)
    assert code == 0, "dbt build on Spark failed: see the dbt log under " + str(paths.state_dir)
    return target


def test_spark_accounts_for_every_line_as_the_loader_does(spark_features, real_mart):
    batches = _spark_table(spark_features, "staging", "stg_online_retail__load_batches")
    assert len(batches) == 1
    spark = batches.iloc[0]
    assert spark.lines_read == spark.lines_loaded + spark.lines_duplicate + spark.lines_rejected
    with psycopg.connect(real_mart.url) as conn:
        loaded = conn.execute("select lines_read, lines_loaded, lines_duplicate, lines_rejected, date_format"
                              " from load_batches").fetchall()
    assert loaded == [(spark.lines_read, spark.lines_loaded, spark.lines_duplicate, spark.lines_rejected,
                       spark.date_format)]
    assert spark.lines_read == 541_909


def test_spark_features_equal_postgresql_features(spark_features, real_mart):
    spark = _spark_table(spark_features, "marts", "fct_customer_features")
    spark["as_of_date"] = spark["as_of_date"].astype(str)
    spark = spark[spark.as_of_date == str(AS_OF)].set_index("customer_id").sort_index()
    with psycopg.connect(real_mart.url) as conn:
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


def test_spark_daily_sales_equal_postgresql(spark_features, real_mart):
    spark = _spark_table(spark_features, "marts", "fct_customer_daily_sales")
    with psycopg.connect(real_mart.url) as conn:
        rows, gross = conn.execute("select count(*), sum(gross_revenue) from fct_customer_daily_sales"
                                   " where invoice_date <= %s", (AS_OF,)).fetchone()
    assert len(spark) == rows
    assert round(sum(spark.gross_revenue), 2) == round(gross, 2) == REAL_GROSS_REVENUE
