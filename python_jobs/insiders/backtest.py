"""`insiders backtest`: what the product would have picked at a past cutoff, against what happened next.

Each cutoff is built in a scratch warehouse that holds only the lines dated up to the cutoff, so nothing after it
can leak into the features, the segments, the forecast or the Insider choice; production tables are untouched.
Only once the labels are made are the horizon's lines added, to measure: for groups of the Insiders' size, the
share of the horizon's revenue each rule captured, with bootstrap intervals, and the forecast against the actual
purchases. Results go to ml.backtests and ml.forecast_backtests of the target, and rpt_backtests is built over them.

What is the same on every engine lives here (the rule groups, the measurement, the forecast error, the loop over
cutoffs and its timings); an engine (`BacktestEngine`) only builds a scratch warehouse with the lines up to a
cutoff, labels there, adds the horizon, reads the outcome, writes the results and builds the report: PostgreSQL's
below (a scratch database on the same server), Spark's in spark_backtest.py (scratch schemas in the same
warehouse).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
import psycopg

from . import db, dbt_runner, stages
from .cluster.config import ClusterConfig
from .cluster.job import ClusterResult, run_clustering
from .errors import InsidersError
from .load import ensure_raw_schema
from .program import rankings
from .program.config import ProgramConfig
from .program.evaluate import forecast_error, measure_groups
from .program.outcomes import aligned
from .progress import StageTimer
from .settings import Paths, Target
from .warehouse import PostgresWarehouse, copy_rows

if TYPE_CHECKING:
    from .engines import SparkTarget

log = logging.getLogger("insiders")
# the rules every backtest reports (plus every candidate the Insider choice compared)
RULES = ("insiders", "top_past_revenue", "rfm_score", "top_expected_revenue", "random")
# what ml.backtests and ml.forecast_backtests hold of a cutoff's measurement (besides its id, cutoff and horizon)
BACKTEST_COLUMNS = ("rule", "insider_definition", "n_customers", "customer_share", "future_revenue_share",
                    "future_revenue_share_low", "future_revenue_share_high", "lift", "precision", "recall",
                    "share_difference_vs_insiders", "share_difference_low", "share_difference_high")
FORECAST_COLUMNS = ("n_customers", "predicted_purchases", "actual_purchases", "predicted_revenue", "actual_revenue",
                    "revenue_error_share", "purchases_mae", "revenue_mae", "seconds")


class Scratch(Protocol):
    """One cutoff's scratch warehouse."""

    def label(self, program: ProgramConfig, cluster_config: ClusterConfig) -> ClusterResult:
        """Build it from the lines invoiced up to the cutoff only and label the cutoff there (every candidate)."""
        ...

    def outcome(self, horizon_days: int) -> pd.DataFrame:
        """Add the horizon's lines and read what each customer did in it (Warehouse.future_revenue)."""
        ...


class BacktestEngine(Protocol):
    """What a backtest does differently per engine."""

    def last_day(self) -> date:
        """The date of the last line there is (a horizon must end by it)."""
        ...

    def scratch(self, cutoff: date) -> AbstractContextManager[Scratch]:
        """A scratch warehouse for `cutoff`, dropped afterwards whatever happens."""
        ...

    def write(self, backtest_id: str, cutoff: date, horizon_days: int, rows: pd.DataFrame,
              errors: dict[str, float]) -> None:
        """The cutoff's measurement into the target's ml tables, replacing that cutoff and horizon's rows."""
        ...

    def build_report(self) -> None:
        """dbt: rpt_backtests over the ml tables."""
        ...


@contextmanager
def scratch_database(target: Target, cutoff: date) -> Iterator[Target]:
    """A new, empty database beside the target's, dropped afterwards whatever happens."""
    name = f"insiders_backtest_{cutoff:%Y%m%d}_{os.getpid()}"
    try:
        with db.connect(target, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
            conn.execute(f'create database "{name}"')
    except psycopg.Error as exc:
        raise InsidersError(f"cannot create the scratch database {name} for the backtest on {target.safe_url} "
                            f"(the user needs CREATEDB): {str(exc).strip()}") from exc
    try:
        yield replace(target, dbname=name)
    finally:
        dbt_runner.forget(replace(target, dbname=name))
        try:
            with db.connect(target, autocommit=True) as conn:
                conn.execute(f'drop database if exists "{name}" with (force)')
        except (psycopg.Error, InsidersError) as exc:
            log.warning("could not drop the scratch database %s (drop it by hand): %s", name, exc)


def copy_lines(source: Target, scratch: Target, after: date | None, until: date) -> int:
    """Copy the raw lines invoiced in (after, until] (every line up to `until` without `after`)."""
    condition = "invoiced_at < %s::date + 1" + (" and invoiced_at >= %s::date + 1" if after else "")
    params = (until, after) if after else (until,)
    with db.connect(source) as src, db.connect(scratch) as dst:
        ensure_raw_schema(dst)
        if after is None:
            with src.cursor().copy("copy load_batches to stdout (format binary)") as out, \
                    dst.cursor().copy("copy load_batches from stdin (format binary)") as into:
                for block in out:
                    into.write(block)
        query = f"copy (select * from invoice_lines where {condition}) to stdout (format binary)"
        with src.cursor().copy(query, params) as out, \
                dst.cursor().copy("copy invoice_lines from stdin (format binary)") as into:
            for block in out:
                into.write(block)
        # the scratch batches account for the lines they hold (their number and period), so the data-quality
        # checks add up there too and the data end at the cutoff; and they are loaded again now, so that the line
        # tables built batch by batch take in the lines just copied
        dst.execute("update load_batches as batches"
                    " set lines_read = coalesce(held.n, 0), lines_loaded = coalesce(held.n, 0), lines_rejected = 0,"
                    " lines_duplicate = 0, first_invoiced_at = held.first_at, last_invoiced_at = held.last_at,"
                    " loaded_at = clock_timestamp()"
                    " from load_batches as every_batch left join (select batch_id, count(*) as n,"
                    " min(invoiced_at) as first_at, max(invoiced_at) as last_at"
                    " from invoice_lines group by batch_id) as held on held.batch_id = every_batch.batch_id"
                    " where batches.batch_id = every_batch.batch_id")
        copied = dst.execute("select count(*) from invoice_lines").fetchone()[0]
        dst.commit()
    return copied


@dataclass(frozen=True)
class PostgresScratch:
    """A scratch database on the target's server, filled by copying the target's loaded lines."""

    source: Target
    target: Target
    paths: Paths
    cutoff: date

    def label(self, program: ProgramConfig, cluster_config: ClusterConfig) -> ClusterResult:
        copied = copy_lines(self.source, self.target, None, self.cutoff)
        log.debug("backtest at %s: %s lines up to the cutoff in %s", self.cutoff, f"{copied:,}", self.target.dbname)
        stages.build_features(self.paths, self.target, [self.cutoff], program)
        with db.connect(self.target) as conn:
            return run_clustering(PostgresWarehouse(conn), self.paths, as_of=self.cutoff, config=cluster_config,
                                  program=program, every_candidate=True)

    def outcome(self, horizon_days: int) -> pd.DataFrame:
        copy_lines(self.source, self.target, self.cutoff, self.cutoff + timedelta(days=horizon_days))
        stages.build_sales(self.paths, self.target)
        with db.connect(self.target) as conn:
            return PostgresWarehouse(conn).future_revenue(self.cutoff, horizon_days)


@dataclass(frozen=True)
class PostgresBacktest:
    """The backtest on PostgreSQL: each cutoff in a scratch database on the same server, the lines copied there."""

    paths: Paths
    target: Target

    def last_day(self) -> date:
        with db.connect(self.target) as conn:
            return stages.data_span(conn)[1]

    @contextmanager
    def scratch(self, cutoff: date) -> Iterator[PostgresScratch]:
        with scratch_database(self.target, cutoff) as scratch, \
                tempfile.TemporaryDirectory(prefix="insiders-bt-") as state:
            yield PostgresScratch(self.target, scratch, Paths(project_dir=self.paths.project_dir,
                                                              state_dir=Path(state)), cutoff)

    def write(self, backtest_id: str, cutoff: date, horizon_days: int, rows: pd.DataFrame,
              errors: dict[str, float]) -> None:
        with db.connect(self.target) as conn:
            write_backtest(conn, backtest_id, cutoff, horizon_days, rows, errors)

    def build_report(self) -> None:
        stages.build_backtest_marts(self.paths, self.target)


def rule_groups(result: ClusterResult, program: ProgramConfig) -> dict[str, np.ndarray]:
    """Each rule's members among the customers known at the cutoff, all of the Insiders' size."""
    features = result.features
    gross, ids = features["gross_revenue"].to_numpy(dtype=float), features["customer_id"].to_numpy()
    size = result.n_insiders
    groups = {"insiders": result.is_insider}
    for name, score in sorted(result.scores.items(), key=lambda item: (item[0] not in RULES, item[0])):
        groups[name] = rankings.top_n(score, gross, ids, size)
    random = np.zeros(len(ids), dtype=bool)
    random[np.random.default_rng(program.seed).choice(len(ids), size=size, replace=False)] = True
    groups["random"] = random
    return groups


def check_horizons(cutoffs: list[date], horizon_days: int, last: date) -> None:
    """Every cutoff's horizon ends by the last line, before any cutoff is built."""
    late = [cutoff for cutoff in cutoffs if cutoff + timedelta(days=horizon_days) > last]
    if late:
        raise InsidersError(f"the horizon of {horizon_days} days after {late[0]} ends after the last line "
                            f"({last}): choose an earlier cutoff or a shorter horizon")


def backtest_cutoff(engine: BacktestEngine, cutoff: date, program: ProgramConfig, cluster_config: ClusterConfig,
                    backtest_id: str) -> tuple[pd.DataFrame, dict[str, float]]:
    started = time.perf_counter()
    with engine.scratch(cutoff) as scratch:
        result = scratch.label(program, cluster_config)
        groups = rule_groups(result, program)
        # only now does the scratch warehouse see the horizon
        outcome = scratch.outcome(program.horizon_days)
    customer_id = result.features["customer_id"]
    net = aligned(outcome, customer_id, "net_revenue").to_numpy()
    rows = measure_groups(net, groups, reference="insiders", resamples=program.bootstrap_resamples,
                          seed=program.seed)
    rows.insert(0, "cutoff_date", cutoff)
    rows.insert(1, "horizon_days", program.horizon_days)
    rows["insider_definition"] = result.insider_definition
    forecast = result.forecast.customers
    errors = forecast_error(forecast[f"expected_purchases_{program.horizon_days}d"].to_numpy(),
                            aligned(outcome, customer_id, "purchase_days").to_numpy(),
                            forecast[f"expected_revenue_{program.horizon_days}d"].to_numpy(),
                            aligned(outcome, customer_id, "gross_revenue").to_numpy())
    errors["seconds"] = round(time.perf_counter() - started, 1)
    engine.write(backtest_id, cutoff, program.horizon_days, rows, errors)
    return rows, errors


def write_backtest(conn: psycopg.Connection, backtest_id: str, cutoff: date, horizon_days: int, rows: pd.DataFrame,
                   errors: dict[str, float]) -> None:
    with conn.transaction():
        db.create_tables(conn, "ml")
        conn.execute("delete from backtests where cutoff_date = %s and horizon_days = %s", (cutoff, horizon_days))
        conn.execute("delete from forecast_backtests where cutoff_date = %s and horizon_days = %s",
                     (cutoff, horizon_days))
        with conn.cursor() as cur:
            copy_rows(cur, "backtests", rows[["cutoff_date", "horizon_days", *BACKTEST_COLUMNS]]
                      .assign(backtest_id=backtest_id))
        placeholders = ", ".join(["%s"] * (3 + len(FORECAST_COLUMNS)))
        conn.execute(f"insert into forecast_backtests (backtest_id, cutoff_date, horizon_days,"
                     f" {', '.join(FORECAST_COLUMNS)}) values ({placeholders})",
                     (backtest_id, cutoff, horizon_days, *[errors[n] for n in FORECAST_COLUMNS]))


def backtest_engine(paths: Paths, target: Target | SparkTarget) -> BacktestEngine:
    """The engine of `target`: a PostgreSQL database, or a Spark warehouse reading the invoice files."""
    from .engines import SparkTarget

    if isinstance(target, SparkTarget):
        from .spark_backtest import SparkBacktest

        return SparkBacktest(paths, target)
    return PostgresBacktest(paths, target)


def backtest(paths: Paths, target: Target | SparkTarget, cutoffs: list[date], program: ProgramConfig,
             cluster_config: ClusterConfig | None = None) -> list[tuple[pd.DataFrame, dict[str, float]]]:
    engine = backtest_engine(paths, target)
    backtest_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    cutoffs = sorted(set(cutoffs))
    check_horizons(cutoffs, program.horizon_days, engine.last_day())
    timer = StageTimer()
    results = []
    for cutoff in cutoffs:
        with timer.stage(f"backtest at {cutoff}") as stage:
            rows, errors = backtest_cutoff(engine, cutoff, program, cluster_config or ClusterConfig(), backtest_id)
            stage.note = f"the Insiders by {rows.iloc[0].insider_definition}, next {program.horizon_days} days"
            results.append((rows, errors))
    with timer.stage("dbt build (backtest report)"):
        engine.build_report()
    return results
