"""The labelling job's warehouse on Spark: the marts dbt built in a Spark session, and the ml tables beside them.

The job reads the feature mart through the session (the same frame, value for value, as from PostgreSQL: both are
read as CSV text is), fits in pandas (the bounded-sample rule holds the fit's memory), places every customer in
the segments inside Spark (the fitted model in a pandas UDF over the mart, batch by batch), and writes its rows
back as Spark tables (sql/ml_schema_spark.sql) that the downstream dbt models read. The forecast, the Insider
choice and the explanations still run in the driver over the frame it read. Parquet tables have no transactions:
a date's rows are replaced by overwriting its partition, and the run's record is written last, so that a run that
dies midway leaves no record that points at missing rows (the next run overwrites the partitions). Its labels
without a record do fail the segment marts' relationships tests (stg_ml__customer_segments and
stg_ml__customer_forecasts: run_id, every date on Spark) until the date is labelled again.

Spark keeps no inner backtest or forecast calibration between runs: a Spark build reads the invoice files where they
lie, so nothing records when a date's features changed, and a kept measurement could outlive them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from .errors import InsidersError
from .settings import schema_name
from .warehouse import DATED_TABLES, FitRecord, InnerBacktestRow, Table, rows_of, without_missing

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from .cluster.model import Assignment, SegmentModel
    from .engines import SparkTarget

log = logging.getLogger(__name__)

# written after the rows they describe (see the module's docstring)
WRITTEN_LAST = ("segment_definitions", "model_selection", "model_runs")


def dbt_session(target: SparkTarget) -> SparkSession:
    """The Spark session dbt's build started in this process (dbt-spark's session method keeps it open): the job
    reads and writes the same warehouse and metastore, which only one session may hold."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    warehouse_dir = session.conf.get("spark.sql.warehouse.dir", "")
    expected = target.spark_dir / "warehouse"
    if Path(warehouse_dir.removeprefix("file:")).resolve() != expected.resolve():
        raise InsidersError(f"the Spark session's warehouse is {warehouse_dir}, not {expected}: the job runs in "
                            "the session of the dbt build before it (`insiders run --engine spark`)")
    return session


def _date(day: date) -> str:
    return f"date'{day.isoformat()}'"


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows typed as PostgreSQL's are read (through CSV text): decimals and dates come out as the same numbers
    and strings on both engines, so that the same customers get the same segments."""
    text = io.StringIO()
    frame.to_csv(text, index=False)
    text.seek(0)
    return pd.read_csv(text)


ASSIGNMENT_SCHEMA = ("customer_id bigint, segment_id bigint, confidence double, distance double, map_x double,"
                     " map_y double")


def segment_scorer(model: SegmentModel) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A pandas UDF (`mapInPandas`) that places each batch of the mart's customers in `model`'s segments: the
    model travels to Spark's Python workers with the function, and only its answers come back."""

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if batch.empty:
                continue
            customers = as_read(batch)
            placed = model.assign(customers)
            yield pd.DataFrame({
                "customer_id": customers["customer_id"].astype("int64"), "segment_id": placed.segment_id,
                "confidence": placed.confidence, "distance": placed.distance, "map_x": placed.map_xy[:, 0],
                "map_y": placed.map_xy[:, 1]})

    return score


class SparkWarehouse:
    """The marts and ml tables of a Spark target (schemas spark_marts, spark_ml for the local session)."""

    def __init__(self, session: SparkSession, target_name: str) -> None:
        self.session = session
        self.target_name = target_name
        self.marts = schema_name("marts", target_name)
        self.ml = schema_name("ml", target_name)
        # pandas in and out through Arrow, in columns, rather than row by row through Python objects
        session.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")

    def _rows(self, query: str) -> list:
        return self.session.sql(query).collect()

    def ensure_ml_schema(self) -> None:
        ddl = resources.files("insiders").joinpath("sql/ml_schema_spark.sql").read_text()
        self.session.sql(f"create database if not exists {self.ml}")
        for statement in ddl.split("\n;\n"):
            body = "\n".join(line for line in statement.splitlines() if not line.lstrip().startswith("--"))
            if body.strip():
                self.session.sql(body.replace("create table if not exists ",
                                              f"create table if not exists {self.ml}.", 1))

    def latest_as_of(self) -> date:
        latest = self._rows(f"select max(as_of_date) from {self.marts}.fct_customer_features")[0][0]
        if latest is None:
            raise InsidersError("the feature mart (fct_customer_features) is empty: run `insiders run --engine "
                                "spark` first")
        return latest

    def read_features(self, as_of: date) -> pd.DataFrame:
        frame = self.session.sql(f"select * from {self.marts}.fct_customer_features"
                                 f" where as_of_date = {_date(as_of)} order by customer_id").toPandas()
        if frame.empty:
            raise InsidersError(f"the feature mart (fct_customer_features) has no rows as of {as_of}")
        return as_read(frame)

    def assign_segments(self, model: SegmentModel, as_of: date, features: pd.DataFrame) -> Assignment:
        from .cluster.model import Assignment

        columns = ", ".join(["customer_id", *model.config.features])
        mart = self.session.sql(f"select {columns} from {self.marts}.fct_customer_features"
                                f" where as_of_date = {_date(as_of)}")
        scored = mart.mapInPandas(segment_scorer(model), schema=ASSIGNMENT_SCHEMA).toPandas()
        placed = scored.set_index("customer_id").reindex(features["customer_id"].astype("int64"))
        if len(scored) != len(features) or placed["segment_id"].isna().any():
            raise InsidersError(f"the feature mart as of {as_of} changed while the job read it: {len(scored):,} "
                                f"customers scored, {len(features):,} read; run again")
        return Assignment(placed["segment_id"].to_numpy(dtype="int64"), placed["confidence"].to_numpy(),
                          placed["distance"].to_numpy(), placed[["map_x", "map_y"]].to_numpy())

    def future_revenue(self, cutoff: date, horizon_days: int) -> pd.DataFrame:
        rows = self._rows(
            "select customer_id, cast(sum(net_revenue) as double), cast(sum(gross_revenue) as double),"
            " count_if(has_purchase)"
            f" from {self.marts}.fct_customer_daily_sales where invoice_date > {_date(cutoff)}"
            f" and invoice_date <= {_date(cutoff + timedelta(days=horizon_days))} group by customer_id")
        return pd.DataFrame([tuple(row) for row in rows],
                            columns=["customer_id", "net_revenue", "gross_revenue", "purchase_days"]
                            ).set_index("customer_id")

    def last_sales_day(self) -> date | None:
        return self._rows(f"select max(invoice_date) from {self.marts}.fct_customer_daily_sales")[0][0]

    def latest_fit(self, as_of: date) -> FitRecord | None:
        rows = self._rows(
            f"select run_id, artifact_path, artifact_sha256, data_cutoff_date from {self.ml}.model_runs"
            f" where mode = 'fit' and data_cutoff_date <= {_date(as_of)}"
            " order by data_cutoff_date desc, created_at desc limit 1")
        return FitRecord(rows[0][0], Path(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    def cached_calibration(self, window_start: date, horizon_days: int) -> float | None:
        return None

    def keep_calibration(self, window_start: date, horizon_days: int, factor: float) -> None:
        return None

    def kept_inner_backtests(self, cutoff: date, horizon_days: int, candidates: list[str],
                             settings_keys: list[str]) -> list[InnerBacktestRow]:
        return []

    def keep_inner_backtests(self, rows: list[InnerBacktestRow]) -> None:
        return None

    def _incoming(self, frame: pd.DataFrame, schema: StructType) -> DataFrame:
        """The frame as a Spark DataFrame of `schema`'s columns, types and order."""
        from pyspark.sql.types import DoubleType, IntegerType, LongType

        typed = frame.reindex(columns=[field.name for field in schema])
        for field in schema:  # a float column may hold ints, an int column None: each as its column's type
            if isinstance(field.dataType, DoubleType):
                typed[field.name] = pd.to_numeric(typed[field.name], errors="coerce").astype(float)
            elif isinstance(field.dataType, IntegerType | LongType):
                typed[field.name] = pd.to_numeric(typed[field.name]).astype("Int64")
        return self.session.createDataFrame(without_missing(typed), schema=schema)

    def write_run(self, tables: dict[str, Table], as_of: date) -> None:
        frames = {name: rows_of(rows) for name, rows in tables.items()}
        stamped = {name: frame.assign(created_at=datetime.now(UTC).replace(tzinfo=None)) if name == "model_runs"
                   else frame for name, frame in frames.items()}
        order = [name for name in stamped if name not in WRITTEN_LAST] + \
            [name for name in WRITTEN_LAST if name in stamped]
        for name in order:
            if name in DATED_TABLES:
                self.replace_partition(name, "as_of_date", as_of, stamped[name])
            elif not stamped[name].empty:
                self._insert(name, stamped[name])

    def replace_partition(self, table: str, column: str, value: date, frame: pd.DataFrame, *,
                          keep: str | None = None) -> None:
        """The rows of ml `table` whose partition `column` is `value` replaced by `frame`'s, except those that
        match the condition `keep`, which stay (a backtest replaces its cutoff's rows of one horizon only)."""
        if keep:
            # read into memory first: Spark refuses to overwrite a table that the same statement reads
            kept = self.session.sql(f"select * from {self.ml}.{table} where {column} = {_date(value)}"
                                    f" and ({keep})").toPandas().drop(columns=column)
            if not kept.empty:
                frame = pd.concat([kept, frame], ignore_index=True)
        self._insert(table, frame, partition=(column, value))

    def _insert(self, table: str, frame: pd.DataFrame, *, partition: tuple[str, date] | None = None) -> None:
        """`frame`'s rows into ml `table`: appended, or in place of one partition's rows (its column given by the
        partition clause, not by the rows)."""
        from pyspark.sql.types import StructType

        name = f"{self.ml}.{table}"
        column = partition[0] if partition else None
        schema = StructType([field for field in self.session.table(name).schema if field.name != column])
        self._incoming(frame, schema).createOrReplaceTempView("insiders_incoming")
        into = f"overwrite table {name} partition ({column} = '{partition[1].isoformat()}')" if partition \
            else f"into {name}"
        self.session.sql(f"insert {into} select {', '.join(schema.fieldNames())} from insiders_incoming")
        self.session.catalog.dropTempView("insiders_incoming")

    def drop_schemas(self, roles: tuple[str, ...]) -> None:
        """Drop this target's schemas of `roles` and every table in them (a backtest's scratch build)."""
        for role in roles:
            self.session.sql(f"drop database if exists {schema_name(role, self.target_name)} cascade")
