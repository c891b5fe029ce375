"""The stages of a run, shared by `run`, `cluster`, `backfill` and `backtest`: load, features, label, marts.

Features are built point in time: a date already in the mart is kept as it is (history does not change because
later lines arrived) unless the caller rebuilds it on purpose; every date the labelling stage reads (the as-of
date, and the earlier cutoffs its inner backtests use) is built in one dbt statement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import psycopg

from . import db
from .dbt_runner import invoke_dbt
from .errors import InsidersError
from .load import ensure_raw_schema, load_file
from .program.config import ProgramConfig
from .program.cutoffs import required_dates
from .settings import Paths, Target

log = logging.getLogger("insiders")

# unit tests check the models' SQL on fixed inputs, never the data loaded: `make test` runs every one
# (test_dbt_unit_tests.py), and the pipeline's builds leave them out, as dbt advises for production runs; they
# were about a fifth of a new day's build nodes' time
WITHOUT_UNIT_TESTS = ["--exclude-resource-type", "unit_test"]
FEATURE_MART = "model.insiders.fct_customer_features"


def load_inputs(target: Target, inputs: Iterable[Path]) -> tuple[int, int]:
    """Load files, with their progress shown; (lines loaded, lines rejected)."""
    loaded = rejected = 0
    with db.connect(target) as conn:
        for path in inputs:
            result = load_file(conn, path, progress=True)
            loaded += result.lines_loaded
            rejected += result.lines_rejected
    return loaded, rejected


def data_span(conn: psycopg.Connection) -> tuple[date, date]:
    """First and last invoice dates loaded: from the periods the batches noted, since a scan of every line took
    0.7 s of a new day's run at 10 million lines. A line dropped as a duplicate has its twin, with the same date,
    in another batch, so the batches' periods cover exactly the lines kept."""
    ensure_raw_schema(conn)
    first, last = conn.execute("select min(first_invoiced_at)::date, max(last_invoiced_at)::date from load_batches"
                               " where lines_loaded > 0").fetchone()
    if first is None:
        raise InsidersError("no invoice lines are loaded: `insiders load FILE` (or `insiders run --input FILE`)")
    return first, last


def built_dates(conn: psycopg.Connection) -> set[date]:
    exists = conn.execute("select to_regclass('fct_customer_features') is not null").fetchone()[0]
    if not exists:
        return set()
    return {row[0] for row in conn.execute("select distinct as_of_date from fct_customer_features")}


def lines_loaded_since_last_build(conn: psycopg.Connection) -> bool:
    """Whether a batch with lines was loaded (or loaded again) that the line checks have not taken in."""
    built = conn.execute(
        "select exists (select 1 from information_schema.columns where table_schema = 'intermediate'"
        " and table_name = 'int_invoice_lines__rule_checks' and column_name = 'batch_loaded_at')").fetchone()[0]
    if not built:  # never built, or built before the line checks were kept batch by batch
        return True
    # one probe of the index per batch: as one anti join, PostgreSQL merged the batches with every line checked
    # (1.2 s at 10 million lines), its statistics not knowing the new batch
    batches = conn.execute("select batch_id, loaded_at from load_batches where lines_loaded > 0").fetchall()
    return any(not conn.execute("select exists (select 1 from int_invoice_lines__rule_checks"
                                " where batch_id = %s and batch_loaded_at = %s)", batch).fetchone()[0]
               for batch in batches)


def table_and_column(conn: psycopg.Connection, table: str, column: str) -> tuple[bool, bool]:
    """Whether `table` exists, and whether it has `column`: how a table an earlier version built is told apart."""
    return conn.execute(
        "select to_regclass(%s) is not null, exists (select 1 from pg_attribute where attrelid = to_regclass(%s)"
        " and attname = %s and not attisdropped)", (table, table, column)).fetchone()


# built whole by earlier versions, now by invoice date with a stamp column on every row
DATED_LINE_TABLES = ("fct_customer_daily_sales", "int_customer_invoices")


def retire_whole_line_tables(conn: psycopg.Connection) -> bool:
    """Drop, once, the line tables an earlier version built whole, so that the next build creates them by invoice
    date (an incremental build cannot stamp the rows it does not rewrite); whether any of them is missing now
    (dropped here, or by a run that failed before building them again), in which case the caller must build."""
    missing = False
    # before the load log existed, the line checks' batch versions were not logged: checked again from scratch once
    unlogged = conn.execute("select to_regclass('int_invoice_lines__loaded_dates') is null"
                            " and to_regclass('int_invoice_lines__rule_checks') is not null").fetchone()[0]
    if unlogged:
        log.info("the line checks were built before the load log: dropped, built again with it")
        conn.execute("drop table int_invoice_lines__rule_checks cascade")
    for table in DATED_LINE_TABLES:
        exists, stamped = table_and_column(conn, table, "lines_loaded_through")
        if exists and not stamped:
            log.info("%s was built whole by an earlier version: dropped, built again by invoice date", table)
            conn.execute(f"drop table {table}")
        missing = missing or not stamped
    return missing


def latest_load(conn: psycopg.Connection) -> datetime | None:
    """When the latest batch was loaded (None before any load)."""
    return conn.execute("select max(loaded_at) from load_batches").fetchone()[0]


def stale_dates(conn: psycopg.Connection, dates: Iterable[date], loaded_through: datetime | None) -> set[date]:
    """Those of `dates` built before the load at `loaded_through` (or with no record of when they were built)."""
    built_through = dict(conn.execute("select as_of_date, lines_loaded_through from feature_builds"
                                      " where as_of_date = any(%s)", (list(dates),)).fetchall())
    return {day for day in dates if built_through.get(day) is None
            or (loaded_through is not None and loaded_through > built_through[day])}


def dates_to_label(conn: psycopg.Connection, as_of_dates: Iterable[date], program: ProgramConfig) -> list[date]:
    """The as-of dates and every earlier cutoff their Insider choice reads."""
    first, _ = data_span(conn)
    return sorted({day for as_of in as_of_dates for day in required_dates(as_of, first, program)})


def build_features(paths: Paths, target: Target, as_of_dates: Iterable[date], program: ProgramConfig, *,
                   rebuild: Iterable[date] = (), on_feature_mart_start: Callable[[], None] | None = None,
                   ) -> list[date]:
    """dbt: staging, cleaning and the feature mart for every date the labels of `as_of_dates` need that is not
    built yet, and for `rebuild`; returns the dates built. `on_feature_mart_start` is called when dbt starts the
    feature mart's statement, the build's longest, while dbt's threads wait on PostgreSQL (not at all when no date
    is built)."""
    with db.connect(target) as conn:
        needed = dates_to_label(conn, as_of_dates, program)  # creates the raw and control tables if need be
        loaded_through = latest_load(conn)
        # a date is rebuilt to take in lines loaded since it was built; with none, it would come out the same
        already_built = built_dates(conn)
        restated = sorted(stale_dates(conn, rebuild, loaded_through) & already_built)
        missing = sorted((set(needed) - already_built) | set(restated))
        # tables dropped to be built by date are built again like new lines, even with no date to build
        new_lines = retire_whole_line_tables(conn) | lines_loaded_since_last_build(conn)
        conn.commit()
    if not missing:
        log.debug("features for %d as-of dates are built already%s; kept as they are", len(needed),
                 "" if new_lines else " and no line was loaded since")
        if new_lines:  # the line tables and daily sales still take in the new lines
            build_sales(paths, target)
        return []
    if restated:
        log.warning("restating the features of %s: lines were loaded after %s built", ", ".join(map(str, restated)),
                    "it was" if len(restated) == 1 else "they were")
    with requested_dates(target, "feature_dates", missing):
        invoke_dbt(paths, target, ["build", "--exclude", "source:ml+", *WITHOUT_UNIT_TESTS],
                   on_node_start={FEATURE_MART: on_feature_mart_start} if on_feature_mart_start else None)
    with db.connect(target) as conn, conn.transaction():
        conn.execute("delete from feature_builds where as_of_date = any(%s)", (missing,))
        with conn.cursor().copy("copy feature_builds (as_of_date, lines_loaded_through) from stdin") as copy:
            for day in missing:
                copy.write_row((day, loaded_through))
        # inner backtests and forecast calibrations measured on the old features of a restated date, again
        if conn.execute("select to_regclass('inner_backtests') is not null").fetchone()[0]:
            conn.execute("delete from inner_backtests where cutoff_date = any(%s)", (missing,))
        if conn.execute("select to_regclass('forecast_calibrations') is not null").fetchone()[0]:
            conn.execute("delete from forecast_calibrations where window_start = any(%s)", (missing,))
    return missing


def build_sales(paths: Paths, target: Target) -> None:
    """dbt: the line tables, the daily sales mart and the data-quality report and checks over every line loaded,
    feature dates untouched (what a backtest measures its horizon on)."""
    with db.connect(target) as conn:
        retire_whole_line_tables(conn)
        conn.commit()
    invoke_dbt(paths, target, ["build", "--select", "+fct_customer_daily_sales", "+rpt_data_quality_checks",
                                *WITHOUT_UNIT_TESTS])


def quality_warnings(conn: psycopg.Connection) -> list[str]:
    """The data-quality warnings of the latest build (rpt_data_quality_checks), in words; errors stop the build
    itself, so they never reach this list."""
    if conn.execute("select to_regclass('rpt_data_quality_checks') is null").fetchone()[0]:
        return []
    return [row[0] for row in conn.execute(
        "select message from rpt_data_quality_checks where is_failing order by check_name, checked_subject")]


# built whole by earlier versions, now by as-of date or pair of dates, with the column of the runs they hold
SEGMENT_MARTS_BY_DATE = {"fct_segment_summary": "run_id", "fct_segment_transitions": "from_run_id"}


def retire_whole_segment_marts(conn: psycopg.Connection) -> None:
    """Drop, once, the segment marts an earlier version built whole, so that the next build creates them with their
    indexes: dbt's incremental build of such a table would build every date again (macro has_columns) but index
    it only when it creates it. The views over them go too, and the same build creates them again."""
    for table, run_column in SEGMENT_MARTS_BY_DATE.items():
        exists, holds_runs = table_and_column(conn, table, run_column)
        if exists and not holds_runs:
            log.info("%s was built whole by an earlier version: dropped, built again by date", table)
            conn.execute(f"drop table {table} cascade")


def build_marts(paths: Paths, target: Target, as_of: date | None = None) -> None:
    """dbt: the segment marts and reports over the ml tables (as of `as_of`, else the latest date labelled)."""
    with db.connect(target) as conn:  # the membership snapshot of earlier versions, replaced by a model
        conn.execute("drop table if exists snp_customer_segments")
        retire_whole_segment_marts(conn)
        conn.commit()
    with requested_dates(target, "current_as_of", [as_of] if as_of else []):
        invoke_dbt(paths, target, ["build", "--select", "source:ml+", *WITHOUT_UNIT_TESTS])


def build_backtest_marts(paths: Paths, target: Target) -> None:
    """dbt: rpt_backtests over ml.backtests, so that BI and the report see the new results."""
    invoke_dbt(paths, target, ["build", "--select", "+rpt_backtests", *WITHOUT_UNIT_TESTS])


@contextmanager
def requested_dates(target: Target, table: str, dates: Iterable[date]) -> Iterator[None]:
    """The dates the next dbt build reads from a control table, there for the build and removed after it, so
    that a later hand-run `dbt build` computes its own default again."""
    with db.connect(target) as conn:
        ensure_raw_schema(conn)
        with conn.transaction():
            conn.execute(f"delete from {table}")
            with conn.cursor().copy(f"copy {table} (as_of_date) from stdin") as copy:
                for day in sorted(set(dates)):
                    copy.write_row((day,))
        # the planner's count of the dates: never analysed, the table was taken for 2,550 rows, and a statement
        # for one date planned as if for thousands (aggregates spilled to disk)
        conn.execute(f"analyze {table}")
        conn.commit()
        try:
            yield
        finally:
            try:
                conn.execute(f"delete from {table}")
                conn.commit()
            except psycopg.Error as exc:  # do not hide the build's own error behind the clean-up's
                log.warning("could not empty %s after the build: %s", table, exc)
