"""Reading the feature mart and writing the ml schema. Connections come from the caller (insiders.db)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import joblib
import pandas as pd
import psycopg

from .. import db
from ..errors import InsidersError
from ..files import replaced_atomically
from .candidates import Candidate
from .model import SegmentModel

log = logging.getLogger(__name__)


def ensure_ml_schema(conn: psycopg.Connection) -> None:
    db.create_tables(conn, "ml")


def latest_as_of(conn: psycopg.Connection) -> date:
    row = conn.execute("select max(as_of_date) from fct_customer_features").fetchone()
    if row is None or row[0] is None:
        raise InsidersError("the feature mart (fct_customer_features) is empty: run `insiders run` first")
    return row[0]


def read_features(conn: psycopg.Connection, as_of: date) -> pd.DataFrame:
    """The mart's rows for one as-of date, streamed with COPY."""
    buffer = io.BytesIO()
    with conn.cursor().copy(
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


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(model: SegmentModel, directory: Path, run_id: str) -> tuple[Path, str]:
    path = directory / f"segment-model-{run_id}.joblib"
    with replaced_atomically(path) as (partial,):
        joblib.dump(model, partial)
    return path, sha256_of(path)


@dataclass(frozen=True)
class FitRecord:
    run_id: str
    artifact: Path
    sha256: str
    data_cutoff: date


def latest_fit(conn: psycopg.Connection, as_of: date) -> FitRecord | None:
    """The model in force at `as_of`: the latest fit on data up to that date (never one that saw later lines)."""
    row = conn.execute(
        "select run_id, artifact_path, artifact_sha256, data_cutoff_date from model_runs"
        " where mode = 'fit' and data_cutoff_date <= %s order by data_cutoff_date desc, created_at desc limit 1",
        (as_of,),
    ).fetchone()
    return FitRecord(row[0], Path(row[1]), row[2], row[3]) if row else None


def load_model(fit: FitRecord) -> SegmentModel:
    """The model of a fit run, refused when the file is not the one recorded."""
    run_id, path, recorded_sha256 = fit.run_id, fit.artifact, fit.sha256
    if not path.exists():
        raise InsidersError(f"the model of run {run_id} is missing ({path}); fit a new one with --refit")
    actual = sha256_of(path)
    if actual != recorded_sha256:
        raise InsidersError(
            f"{path} does not match its record in ml.model_runs (sha256 {actual[:12]}… ≠ {recorded_sha256[:12]}…): "
            "refusing to score with it; fit a new one with --refit"
        )
    return joblib.load(path)


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


def copy_rows(cur: psycopg.Cursor, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame into `table` by column name; missing values (NaN, NaT, None) become NULL."""
    values = frame.astype(object).where(frame.notna(), None)
    with cur.copy(f"copy {table} ({', '.join(frame.columns)}) from stdin") as copy:
        for row in values.itertuples(index=False, name=None):
            copy.write_row(row)


def write_run(conn: psycopg.Connection, *, run: dict[str, object], candidates: list[Candidate],
              model: SegmentModel | None, segments: pd.DataFrame, rules: pd.DataFrame, forecasts: pd.DataFrame,
              hypotheses: pd.DataFrame, as_of: date) -> None:
    """One transaction: the run, its grid and definitions (fits), and this as-of date's labels, forecasts and
    rules (replacing the date's earlier ones)."""
    with conn.transaction(), conn.cursor() as cur:
        ensure_ml_schema(conn)
        record = {key: json.dumps(_finite(value), default=_json_value) if isinstance(value, dict) else value
                  for key, value in run.items()}
        cur.execute(
            f"insert into model_runs ({', '.join(record)}) values ({', '.join(['%s'] * len(record))})",
            list(record.values()),
        )
        if candidates:
            grid = pd.DataFrame([{
                "run_id": run["run_id"], "candidate_id": c.candidate_id, "embedding": c.embedding,
                "algorithm": c.algorithm, "k": c.k, "n_segments": c.n_clusters,
                "smallest_segment_share": c.smallest_share, "top_segment_share": c.top_segment_share,
                "noise_share": c.noise_share,
                "silhouette": c.silhouette, "davies_bouldin": c.davies_bouldin,
                "calinski_harabasz": c.calinski_harabasz, "stability": c.stability, "fit_seconds": c.fit_seconds,
                "eligible": c.eligible, "rejection": c.rejection, "selected": c.selected,
            } for c in candidates])
            grid["k"] = grid["k"].astype("Int64")  # None for algorithms that choose their own k
            copy_rows(cur, "model_selection", grid)
        if model is not None:
            definitions = pd.DataFrame([{
                "model_run_id": run["run_id"], "segment_id": s.segment_id, "segment_name": s.name,
                "is_top_segment": s.is_top_segment, "n_customers_at_fit": s.n_customers_at_fit,
                "profile": json.dumps(s.profile),
            } for s in model.segments])
            copy_rows(cur, "segment_definitions", definitions)
        cur.execute("delete from customer_segments where as_of_date = %s", (as_of,))
        copy_rows(cur, "customer_segments", segments)
        cur.execute("delete from customer_forecasts where as_of_date = %s", (as_of,))
        copy_rows(cur, "customer_forecasts", forecasts)
        cur.execute("delete from hypothesis_tests where as_of_date = %s", (as_of,))
        copy_rows(cur, "hypothesis_tests", hypotheses)
        cur.execute("delete from insider_rules where as_of_date = %s", (as_of,))
        if not rules.empty:
            copy_rows(cur, "insider_rules", rules)
