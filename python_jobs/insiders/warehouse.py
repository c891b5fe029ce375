"""Where the labelling job reads the marts and writes the ml tables: the `Warehouse` it is given.

The job (cluster/job.py and the program's choice) only ever asks these questions of the database, so that the same
job runs on PostgreSQL (`PostgresWarehouse`, over a psycopg connection) and on Spark (`spark_warehouse`). What the
job writes is built here as frames, once, for every engine (`run_tables`).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
import psycopg

from . import db
from .errors import InsidersError

if TYPE_CHECKING:
    from .cluster.model import Assignment, SegmentModel

# the tables whose rows belong to one as-of date, replaced as a whole when the date is labelled again
DATED_TABLES = ("customer_segments", "customer_forecasts", "hypothesis_tests", "insider_rules")
# the run's own tables, appended to
RUN_TABLES = ("model_runs", "model_selection", "segment_definitions")


@dataclass(frozen=True)
class FitRecord:
    """A fit run's model: where its artifact is and what it must hash to, and the last date of its data."""

    run_id: str
    artifact: Path
    sha256: str
    data_cutoff: date


@dataclass(frozen=True)
class InnerBacktestRow:
    cutoff_date: date
    horizon_days: int
    settings_key: str
    candidate: str
    n_customers: int
    future_revenue_share: float | None


class Warehouse(Protocol):
    """What the labelling job reads and writes."""

    def ensure_ml_schema(self) -> None: ...

    def latest_as_of(self) -> date: ...

    def read_features(self, as_of: date) -> pd.DataFrame:
        """The feature mart's rows at one as-of date, by customer_id, typed as a CSV of them would be read."""
        ...

    def assign_segments(self, model: SegmentModel, as_of: date, features: pd.DataFrame) -> Assignment:
        """Every customer of the mart at `as_of` placed in the model's segments, in the order of `features` (what
        `read_features` returned for that date), where the engine can run the model."""
        ...

    def future_revenue(self, cutoff: date, horizon_days: int) -> pd.DataFrame:
        """Per customer with lines in (cutoff, cutoff + horizon]: net_revenue, gross_revenue, purchase_days."""
        ...

    def last_sales_day(self) -> date | None: ...

    def latest_fit(self, as_of: date) -> FitRecord | None:
        """The model in force at `as_of`: the latest fit on data up to that date (never one that saw later lines)."""
        ...

    def cached_calibration(self, window_start: date, horizon_days: int) -> float | None: ...

    def keep_calibration(self, window_start: date, horizon_days: int, factor: float) -> None: ...

    def kept_inner_backtests(self, cutoff: date, horizon_days: int, candidates: list[str],
                             settings_keys: list[str]) -> list[InnerBacktestRow]: ...

    def keep_inner_backtests(self, rows: list[InnerBacktestRow]) -> None: ...

    def write_run(self, tables: dict[str, Table], as_of: date) -> None:
        """One run's rows (`run_tables`): appended to the run tables, replacing `as_of`'s rows in the dated ones."""
        ...


def _finite(value: object) -> object:
    """JSON has no infinity or NaN: such estimates (a dropout rate fitted to zero) are written as text."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _json_value(value: object) -> object:
    """numpy scalars and dates in run records."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


# a table's rows, or what computes them when the table is written (so that a run writes its other tables while
# the last one is still being measured)
Table = pd.DataFrame | Callable[[], pd.DataFrame]


def rows_of(table: Table) -> pd.DataFrame:
    return table() if callable(table) else table


def run_tables(run: dict[str, object], *, selection: pd.DataFrame | None, definitions: pd.DataFrame | None,
               segments: pd.DataFrame, rules: pd.DataFrame, forecasts: pd.DataFrame,
               hypotheses: Table) -> dict[str, Table]:
    """A run's rows by ml table, the run record's dictionaries as JSON text; tables with nothing to add left out
    (a dated table is written even empty: its date's earlier rows go). The engines write them in this order."""
    # the per-customer tables have no foreign key to the run (ml_schema.sql): their rows are held to it here, as
    # written, and dbt's relationships tests check the dates labelled since the marts were built
    for name, rows in (("customer_segments", segments), ("customer_forecasts", forecasts)):
        if not rows.empty and not (rows["run_id"] == run["run_id"]).all():
            raise ValueError(f"{name}: rows of another run than {run['run_id']}")
    record = {key: json.dumps(_finite(value), default=_json_value) if isinstance(value, dict) else value
              for key, value in run.items()}
    tables: dict[str, Table] = {"model_runs": pd.DataFrame([record])}
    if selection is not None and not selection.empty:
        tables["model_selection"] = selection
    if definitions is not None and not definitions.empty:
        tables["segment_definitions"] = definitions
    tables.update(customer_segments=segments, customer_forecasts=forecasts, hypothesis_tests=hypotheses,
                  insider_rules=rules)
    return tables


def without_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as Python objects, with missing values (NaN, NaT, <NA>) as None: NULL in every engine."""
    return frame.astype(object).where(frame.notna(), None)


# COPY's text format: NULL, and the characters a field must escape (the backslash, the row and field separators)
COPY_NULL = "\\N"
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
COPY_BLOCK_ROWS = 20_000


def _copy_field(value: object) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).translate(COPY_ESCAPES)


def copy_fields(column: pd.Series) -> list[str]:
    """A column as COPY text fields, NULL where missing (NaN, NaT, None, <NA>): numbers as psycopg wrote them (a
    double as its repr, the shortest text that reads back as the same double) without a Python call per value
    for booleans, and without psycopg's dispatch per value for the rest."""
    missing = column.isna().to_numpy()
    kind = column.dtype.kind
    if kind == "b" and not missing.any():
        return np.where(column.to_numpy(dtype=bool), "t", "f").tolist()
    if kind in "iuf":
        if kind == "f":  # as doubles: a float32's own shortest text is another double's
            texts = list(map(repr, column.to_numpy(dtype=np.float64, na_value=np.nan).tolist()))
        else:
            texts = list(map(str, column.to_numpy(dtype=object, na_value=None).tolist()))
        if missing.any():
            texts = [COPY_NULL if absent else text for text, absent in zip(texts, missing, strict=True)]
        return texts
    if pd.api.types.infer_dtype(column, skipna=True) in ("string", "date", "empty"):
        # text and dates repeat (a run's id and date on every row, a few segment names): each distinct value once
        codes, distinct = pd.factorize(column, use_na_sentinel=True)
        texts = np.array([*map(_copy_field, distinct.tolist()), COPY_NULL], dtype=object)
        return texts[codes].tolist()  # code -1, a missing value, takes the last: NULL
    return [COPY_NULL if absent else _copy_field(value) for value, absent in zip(column.tolist(), missing, strict=True)]


def copy_rows(cur: psycopg.Cursor, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame into `table` by column name; missing values (NaN, NaT, None) become NULL. The rows are
    written as text in blocks (writing them one at a time took a second per 180,000 rows)."""
    with cur.copy(f"copy {table} ({', '.join(frame.columns)}) from stdin") as copy:
        for start in range(0, len(frame), COPY_BLOCK_ROWS):
            block = frame.iloc[start:start + COPY_BLOCK_ROWS]
            columns = [copy_fields(block[name]) for name in block.columns]
            copy.write("".join(f"{line}\n" for line in map("\t".join, zip(*columns, strict=True))))


class PostgresWarehouse:
    """The marts and the ml schema on PostgreSQL, through the caller's connection (and its transaction)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def ensure_ml_schema(self) -> None:
        db.create_tables(self.conn, "ml")
        self.conn.commit()

    def latest_as_of(self) -> date:
        row = self.conn.execute("select max(as_of_date) from fct_customer_features").fetchone()
        if row is None or row[0] is None:
            raise InsidersError("the feature mart (fct_customer_features) is empty: run `insiders run` first")
        return row[0]

    def read_features(self, as_of: date) -> pd.DataFrame:
        buffer = io.BytesIO()
        with self.conn.cursor().copy(
            "copy (select * from fct_customer_features where as_of_date = %s order by customer_id)"
            " to stdout (format csv, header)", (as_of,)
        ) as copy:
            for block in copy:
                buffer.write(block)
        buffer.seek(0)
        features = pd.read_csv(buffer)
        if features.empty:
            raise InsidersError(f"the feature mart (fct_customer_features) has no rows as of {as_of}")
        return features

    def assign_segments(self, model: SegmentModel, as_of: date, features: pd.DataFrame) -> Assignment:
        """PostgreSQL cannot run the model: the job scores the rows it read, in blocks."""
        return model.assign(features)

    def future_revenue(self, cutoff: date, horizon_days: int) -> pd.DataFrame:
        rows = self.conn.execute(
            "select customer_id, sum(net_revenue)::float8, sum(gross_revenue)::float8,"
            " count(*) filter (where has_purchase)"
            " from fct_customer_daily_sales where invoice_date > %s and invoice_date <= %s group by customer_id",
            (cutoff, cutoff + timedelta(days=horizon_days)),
        ).fetchall()
        return pd.DataFrame(rows, columns=["customer_id", "net_revenue", "gross_revenue", "purchase_days"]
                            ).set_index("customer_id")

    def last_sales_day(self) -> date | None:
        return self.conn.execute("select max(invoice_date) from fct_customer_daily_sales").fetchone()[0]

    def latest_fit(self, as_of: date) -> FitRecord | None:
        row = self.conn.execute(
            "select run_id, artifact_path, artifact_sha256, data_cutoff_date from model_runs"
            " where mode = 'fit' and data_cutoff_date <= %s order by data_cutoff_date desc, created_at desc limit 1",
            (as_of,),
        ).fetchone()
        return FitRecord(row[0], Path(row[1]), row[2], row[3]) if row else None

    def cached_calibration(self, window_start: date, horizon_days: int) -> float | None:
        row = self.conn.execute(
            "select factor from forecast_calibrations where window_start = %s and horizon_days = %s",
            (window_start, horizon_days)).fetchone()
        return None if row is None else float(row[0])

    def keep_calibration(self, window_start: date, horizon_days: int, factor: float) -> None:
        self.conn.execute("insert into forecast_calibrations (window_start, horizon_days, factor)"
                          " values (%s, %s, %s) on conflict do nothing", (window_start, horizon_days, factor))

    def kept_inner_backtests(self, cutoff: date, horizon_days: int, candidates: list[str],
                             settings_keys: list[str]) -> list[InnerBacktestRow]:
        rows = self.conn.execute(
            "select candidate, n_customers, future_revenue_share, settings_key from inner_backtests"
            " where cutoff_date = %s and horizon_days = %s and candidate = any(%s) and settings_key = any(%s)",
            (cutoff, horizon_days, candidates, settings_keys)).fetchall()
        return [InnerBacktestRow(cutoff, horizon_days, key, candidate, n, share) for candidate, n, share, key in rows]

    def keep_inner_backtests(self, rows: list[InnerBacktestRow]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "insert into inner_backtests (cutoff_date, horizon_days, settings_key, candidate, n_customers,"
                " future_revenue_share) values (%s, %s, %s, %s, %s, %s) on conflict do nothing",
                [(row.cutoff_date, row.horizon_days, row.settings_key, row.candidate, row.n_customers,
                  row.future_revenue_share) for row in rows])

    def write_run(self, tables: dict[str, Table], as_of: date) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            db.create_tables(self.conn, "ml")
            for table, rows in tables.items():
                if table in DATED_TABLES:
                    cur.execute(f"delete from {table} where as_of_date = %s", (as_of,))
                frame = rows_of(rows)
                if not frame.empty:
                    copy_rows(cur, table, frame)
                if table in ("customer_segments", "customer_forecasts"):
                    # the segment marts and their tests read the date's rows by date next: with statistics that did
                    # not know the date, PostgreSQL expected one row and joined a date's 90,000 labels to its
                    # forecasts in a nested loop, through the date's index (minutes, for 0.3 s). The date's column
                    # alone (the row count comes with it): its sample still grows with the table, up to 30,000 rows
                    cur.execute(f"analyze {table} (as_of_date)")
