"""The stages of a run on Spark (`insiders run --engine spark`): dbt builds the staging and the feature marts from
the invoice files where they lie, the labelling job (the same as on PostgreSQL, over a SparkWarehouse) writes the
ml tables, and dbt builds the segment marts over them. All in this process's one Spark session: dbt's build opens
it, the job reuses it.

Spark builds whole tables from the files every run (no load step, no incremental line tables): the as-of dates a
run needs are handed to dbt as a var, which costs Spark's build one parse of the project.

Unlike PostgreSQL's (stages.WITHOUT_UNIT_TESTS), these builds keep the unit tests: the test suite runs
PostgreSQL's, and a Spark run is where the `_on_spark` twins run.
"""

from __future__ import annotations

import logging
from datetime import date

from .dbt_runner import invoke_dbt
from .engines import SparkTarget
from .errors import InsidersError
from .program.config import ProgramConfig
from .program.cutoffs import required_dates
from .settings import Paths, schema_name
from .spark_warehouse import SparkWarehouse, dbt_session

log = logging.getLogger("insiders")

STAGING = "path:models/staging/online_retail"


def build_staging(paths: Paths, target: SparkTarget) -> SparkWarehouse:
    """dbt: the invoice files read, typed, deduplicated and accounted for; their tests run with the features
    (`build_features`), since some also read later models."""
    if not target.invoice_path:
        raise InsidersError("Spark reads the invoice files where they lie: give them with --input")
    invoke_dbt(paths, target, ["run", "--select", STAGING])
    return SparkWarehouse(dbt_session(target), target.name)


def data_span(warehouse: SparkWarehouse) -> tuple[date, date]:
    """First and last invoice dates of the staged lines."""
    staging = schema_name("staging", warehouse.target_name)
    first, last = warehouse.session.sql(
        f"select min(invoice_date), max(invoice_date) from {staging}.stg_online_retail__invoice_lines").collect()[0]
    if first is None:
        raise InsidersError("the invoice files hold no line that could be read (see "
                            f"{staging}.stg_online_retail__rejected_invoice_lines)")
    return first, last


def build_features(paths: Paths, target: SparkTarget, as_of: date, data_start: date,
                   program: ProgramConfig) -> list[date]:
    """dbt: the line tables, daily sales and the feature mart at every date the labels of `as_of` read (the
    staged lines start at `data_start`)."""
    dates = required_dates(as_of, data_start, program)
    invoke_dbt(paths, target, ["build", "--exclude", "source:ml+", STAGING,
                               "--vars", "{as_of_dates: [" + ", ".join(f"'{day}'" for day in dates) + "]}"])
    # every test that reads the staged lines, those that also read the line checks or the reports included (the
    # build above leaves them out with the staging it does not rebuild)
    invoke_dbt(paths, target, ["test", "--select", STAGING])
    return dates


def build_sales(paths: Paths, target: SparkTarget) -> None:
    """dbt: the line tables, the daily sales mart and the data-quality report and checks over the staged lines,
    feature dates untouched (what a backtest measures its horizon on, once `build_staging` took the horizon in);
    then the staging's tests, as after `build_features`."""
    invoke_dbt(paths, target, ["build", "--select", "+fct_customer_daily_sales", "+rpt_data_quality_checks",
                               "--exclude", STAGING])
    invoke_dbt(paths, target, ["test", "--select", STAGING])


def build_marts(paths: Paths, target: SparkTarget, as_of: date | None, select: str = "source:ml+") -> None:
    """dbt: the segment marts and reports over the ml tables, as of `as_of` (else the latest date labelled); or
    `select` only (`+rpt_backtests`, after a backtest)."""
    args = ["build", "--select", select]
    if as_of is not None:
        args += ["--vars", f"{{as_of_date: '{as_of}'}}"]
    invoke_dbt(paths, target, args)


def feature_totals(warehouse: SparkWarehouse, as_of: date) -> tuple[int, float]:
    """Customers and gross revenue of the feature mart at `as_of` (the run's summary)."""
    customers, gross = warehouse.session.sql(
        f"select count(*), coalesce(sum(gross_revenue), 0) from {warehouse.marts}.fct_customer_features"
        f" where as_of_date = date'{as_of.isoformat()}'").collect()[0]
    return int(customers), round(float(gross), 2)
