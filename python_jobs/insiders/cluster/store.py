"""A fit's model file (saved atomically, loaded only when its hash is the one recorded) and the rows a fit adds
to the ml tables; where they are written is the warehouse's business (insiders.warehouse)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import joblib
import pandas as pd

from ..errors import InsidersError
from ..files import replaced_atomically
from ..warehouse import FitRecord
from .candidates import Candidate
from .model import SegmentModel

log = logging.getLogger(__name__)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(model: SegmentModel, directory: Path, run_id: str) -> tuple[Path, str]:
    path = directory / f"segment-model-{run_id}.joblib"
    with replaced_atomically(path) as (partial,):
        joblib.dump(model, partial)
    return path, sha256_of(path)


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


def selection_frame(run_id: str, candidates: list[Candidate]) -> pd.DataFrame:
    """The fit's grid, one row per candidate (ml.model_selection)."""
    grid = pd.DataFrame([{
        "run_id": run_id, "candidate_id": c.candidate_id, "embedding": c.embedding,
        "algorithm": c.algorithm, "k": c.k, "n_segments": c.n_clusters,
        "smallest_segment_share": c.smallest_share, "top_segment_share": c.top_segment_share,
        "noise_share": c.noise_share,
        "silhouette": c.silhouette, "davies_bouldin": c.davies_bouldin,
        "calinski_harabasz": c.calinski_harabasz, "stability": c.stability, "fit_seconds": c.fit_seconds,
        "eligible": c.eligible, "rejection": c.rejection, "selected": c.selected,
    } for c in candidates])
    if not grid.empty:
        grid["k"] = grid["k"].astype("Int64")  # None for algorithms that choose their own k
    return grid


def definitions_frame(run_id: str, model: SegmentModel) -> pd.DataFrame:
    """The fitted model's segments (ml.segment_definitions)."""
    return pd.DataFrame([{
        "model_run_id": run_id, "segment_id": s.segment_id, "segment_name": s.name,
        "is_top_segment": s.is_top_segment, "n_customers_at_fit": s.n_customers_at_fit,
        "profile": json.dumps(s.profile),
    } for s in model.segments])
