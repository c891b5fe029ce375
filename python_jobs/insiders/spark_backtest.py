"""`insiders backtest --engine spark`: the backtest's engine-specific steps on a local Spark session.

Each cutoff is built in scratch schemas of the same warehouse (the `spark_backtest` target: spark_backtest_staging,
…), by the stages of a Spark run, with the invoice files read up to the cutoff only (the staging leaves out the
lines invoiced after it: macros/invoice_files.sql, invoice_lines_through). Only after labelling is the staging
read again up to the end of the horizon, to measure. The scratch schemas are dropped when the cutoff is measured,
whatever happens; the results go to the main target's ml tables (spark_ml.backtests, spark_ml.forecast_backtests)
and rpt_backtests is built there.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from . import dbt_runner, spark_stages
from .backtest import BACKTEST_COLUMNS, FORECAST_COLUMNS
from .cluster.config import ClusterConfig
from .cluster.job import ClusterResult, run_clustering
from .engines import SparkTarget
from .program.config import ProgramConfig
from .progress import StageTimer
from .settings import SCHEMA_ROLES, Paths
from .spark_warehouse import SparkWarehouse, dbt_session

log = logging.getLogger("insiders")

# the profile's output for the scratch builds (profiles.yml.example); one at a time per warehouse, which the
# warehouse's lock guarantees (locks.spark_warehouse_lock), so one name serves every cutoff
SCRATCH_TARGET = "spark_backtest"


@dataclass(frozen=True)
class SparkScratch:
    """One cutoff's scratch schemas: the staging reads the files up to the cutoff, then up to the horizon's end."""

    paths: Paths
    target: SparkTarget
    state_paths: Paths  # the scratch run's own state directory (its model artifacts)
    cutoff: date

    def label(self, program: ProgramConfig, cluster_config: ClusterConfig) -> ClusterResult:
        warehouse = spark_stages.build_staging(self.paths, self.target)
        data_start, last = spark_stages.data_span(warehouse)
        log.debug("backtest at %s: the scratch staging holds lines from %s to %s", self.cutoff, data_start, last)
        spark_stages.build_features(self.paths, self.target, self.cutoff, data_start, program)
        return run_clustering(warehouse, self.state_paths, as_of=self.cutoff, config=cluster_config,
                              program=program, every_candidate=True)

    def outcome(self, horizon_days: int) -> pd.DataFrame:
        horizon = replace(self.target, lines_through=self.cutoff + timedelta(days=horizon_days))
        warehouse = spark_stages.build_staging(self.paths, horizon)
        spark_stages.build_sales(self.paths, horizon)
        return warehouse.future_revenue(self.cutoff, horizon_days)


@dataclass(frozen=True)
class SparkBacktest:
    """The backtest on Spark: the files read where they lie, each cutoff in scratch schemas of the warehouse."""

    paths: Paths
    target: SparkTarget

    def _warehouse(self, target: SparkTarget) -> SparkWarehouse:
        return SparkWarehouse(dbt_session(target), target.name)

    def last_day(self) -> date:
        # the files' lines as a run stages them (Spark's counterpart of PostgreSQL's load): their last date
        with StageTimer().stage("dbt build on Spark (staging)") as stage:
            warehouse = spark_stages.build_staging(self.paths, self.target)
            first, last = spark_stages.data_span(warehouse)
            stage.note = f"lines from {first} to {last}"
        return last

    @contextmanager
    def scratch(self, cutoff: date) -> Iterator[SparkScratch]:
        scratch = replace(self.target, name=SCRATCH_TARGET, lines_through=cutoff)
        warehouse = self._warehouse(scratch)
        warehouse.drop_schemas(SCHEMA_ROLES)  # left by a backtest that was killed
        try:
            with tempfile.TemporaryDirectory(prefix="insiders-bt-") as state:
                yield SparkScratch(self.paths, scratch, Paths(project_dir=self.paths.project_dir,
                                                              state_dir=Path(state)), cutoff)
        finally:
            dbt_runner.forget(scratch)
            try:
                warehouse.drop_schemas(SCHEMA_ROLES)
            except Exception as exc:  # the cutoff's own error, if any, is the one to show
                log.warning("could not drop the scratch schemas %s_* (drop them by hand): %s", SCRATCH_TARGET, exc)

    def write(self, backtest_id: str, cutoff: date, horizon_days: int, rows: pd.DataFrame,
              errors: dict[str, float]) -> None:
        warehouse = self._warehouse(self.target)
        warehouse.ensure_ml_schema()
        created_at = datetime.now(UTC).replace(tzinfo=None)
        other_horizons = f"horizon_days <> {int(horizon_days)}"
        # Parquet tables have no transactions: the rules first, the forecast's row last, each partition replaced
        # whole, so a backtest killed between them is put right by running it again
        warehouse.replace_partition(
            "backtests", "cutoff_date", cutoff,
            rows[list(BACKTEST_COLUMNS)].assign(backtest_id=backtest_id, horizon_days=horizon_days,
                                                created_at=created_at),
            keep=other_horizons)
        forecast = pd.DataFrame([{"backtest_id": backtest_id, "horizon_days": horizon_days,
                                  **{name: errors[name] for name in FORECAST_COLUMNS}, "created_at": created_at}])
        warehouse.replace_partition("forecast_backtests", "cutoff_date", cutoff, forecast,
                                    keep=other_horizons)

    def build_report(self) -> None:
        spark_stages.build_marts(self.paths, self.target, None, select="+rpt_backtests")
