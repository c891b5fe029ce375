"""`insiders cluster`: read the mart, fit (or score with the saved model), name, explain, write back."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.metadata import version

import numpy as np
import pandas as pd
import psycopg
from sklearn.decomposition import PCA

from ..progress import StageTimer
from ..settings import Paths
from . import store
from .candidates import Candidate, embed, run_grid
from .config import ClusterConfig
from .features import feature_matrix, make_preprocessor
from .identity import match_segments
from .model import SegmentDefinition, SegmentModel, centroid_distances, log_profile
from .naming import INSIDERS, choose_insiders, name_segments, profile_segments
from .rules import insider_rules
from .select import select

log = logging.getLogger("insiders")


@dataclass
class ClusterResult:
    run_id: str
    mode: str
    as_of: date
    summary: pd.DataFrame  # one row per segment
    insider_customer_share: float
    insider_revenue_share: float


def library_versions() -> dict[str, str]:
    packages = ("scikit-learn", "numpy", "scipy", "pandas", "umap-learn", "joblib")
    return {"python": platform.python_version(), **{name: version(name) for name in packages}}


def fit_model(features: pd.DataFrame, config: ClusterConfig, as_of: date,
              previous: SegmentModel | None) -> tuple[SegmentModel, list[Candidate]]:
    preprocessor = make_preprocessor()
    scaled = preprocessor.fit_transform(feature_matrix(features, config.features))
    revenue = features["gross_revenue"].astype(float).to_numpy()
    candidates, fits = [], {}
    for candidate, fitted, embedding in run_grid(scaled, revenue, config):
        candidates.append(candidate)
        fits[candidate.candidate_id] = (fitted, embedding)
    best, _ = select(candidates, config)
    fitted, embedding = fits[best.candidate_id]
    points = embed(embedding, scaled)
    labels = np.unique(fitted.labels[fitted.labels >= 0])
    centroids = {int(label): points[fitted.labels == label].mean(axis=0) for label in labels}
    mixture = fitted.model if best.algorithm == "gmm" else None
    if mixture is not None:
        final = mixture.predict(points)
    else:  # nearest centroid, as scoring will do, so that fit and score agree (and noise points find a home)
        matrix = np.array([centroids[label] for label in labels])
        final = labels[centroid_distances(points, matrix).argmin(axis=1)]

    profiles = profile_segments(features, final)
    insider_label = choose_insiders(profiles, config)
    names = name_segments(profiles, insider_label, features)
    logs = log_profile(features, config)
    new_centroids = {int(label): logs[final == label].mean(axis=0) for label in profiles.index}
    previous_centroids = {s.segment_id: np.array(s.profile["log_centroid"]) for s in previous.segments} \
        if previous else {}
    label_to_segment = match_segments(new_centroids, previous_centroids, logs.std(axis=0),
                                      config.match_max_distance, [int(label) for label in profiles.index])
    segments = [
        SegmentDefinition(
            segment_id=label_to_segment[int(label)],
            name=names[int(label)],
            is_insider=int(label) == insider_label,
            n_customers_at_fit=int(row["n_customers"]),
            profile={"log_centroid": [float(v) for v in new_centroids[int(label)]],
                     **{key: float(value) for key, value in row.items()}},
            centroid=[float(v) for v in (mixture.means_[int(label)] if mixture is not None
                                         else centroids[int(label)])],
        )
        for label, row in profiles.iterrows()
    ]
    model = SegmentModel(
        config=config, candidate_id=best.candidate_id, preprocessor=preprocessor, embedding=embedding,
        mixture=mixture, label_to_segment=label_to_segment, segments=segments,
        map_projection=PCA(n_components=2, random_state=config.seed).fit(scaled), fitted_as_of=as_of,
        library_versions=library_versions(),
    )
    return model, candidates


def tsne_map(model: SegmentModel, features: pd.DataFrame, seed: int) -> np.ndarray:
    """t-SNE of this run's customers in the model's scaled space: a picture, recomputed per run."""
    from sklearn.manifold import TSNE

    scaled = model.preprocessor.transform(feature_matrix(features, model.config.features))
    return TSNE(n_components=2, init="pca", random_state=seed).fit_transform(scaled)


def run_clustering(conn: psycopg.Connection, paths: Paths, *, as_of: date | None = None, refit: bool = False,
                   config: ClusterConfig | None = None) -> ClusterResult:
    timer = StageTimer()
    started = time.perf_counter()
    # the map is presentation: it follows the request even when scoring with a model fitted under another config
    map_embedding = (config or ClusterConfig()).map_embedding
    with timer.stage("read features"):
        store.ensure_ml_schema(conn)
        conn.commit()
        as_of = as_of or store.latest_as_of(conn)
        features = store.read_features(conn, as_of)
        previous_fit = store.latest_fit(conn)
        log.info("read %s customers as of %s", f"{len(features):,}", as_of)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    candidates: list[Candidate] = []
    if refit or previous_fit is None:
        mode, config = "fit", config or ClusterConfig()
        with timer.stage("fit segments"):
            previous = store.load_model(*previous_fit) if previous_fit else None
            model, candidates = fit_model(features, config, as_of, previous)
            artifact, sha256 = store.save_model(model, paths.artifacts_dir, run_id)
            model_run_id = run_id
            chosen = next(c for c in candidates if c.selected)
            log.info("chose %s out of %d candidates (calinski-harabasz %.0f, silhouette %.3f, stability %.3f)",
                     chosen.candidate_id, len(candidates), chosen.calinski_harabasz, chosen.silhouette,
                     chosen.stability)
    else:
        mode = "score"
        with timer.stage("score with the saved model"):
            model_run_id, artifact, sha256 = previous_fit
            model = store.load_model(model_run_id, artifact, sha256)
            config = model.config
            log.info("scoring with the model fitted in run %s (%s, as of %s)", model_run_id, model.candidate_id,
                     model.fitted_as_of)
    with timer.stage("assign, explain and write"):
        assignment = model.assign(features)
        if map_embedding == "tsne":
            assignment.map_xy = tsne_map(model, features, config.seed)
        by_id = {s.segment_id: s for s in model.segments}
        is_insider = np.array([by_id[s].is_insider for s in assignment.segment_id])
        segments = pd.DataFrame({
            "customer_id": features["customer_id"].astype("int64"),
            "as_of_date": as_of,
            "run_id": run_id,
            "segment_id": assignment.segment_id.astype(int),
            "segment_name": [by_id[s].name for s in assignment.segment_id],
            "is_insider": is_insider,
            "confidence": assignment.confidence.round(6),
            "distance_to_centroid": assignment.distance.round(6),
            "map_x": assignment.map_xy[:, 0].round(6),
            "map_y": assignment.map_xy[:, 1].round(6),
        })
        rules, accuracy = insider_rules(features, is_insider, config)
        rules_frame = pd.DataFrame([{
            "as_of_date": as_of, "run_id": run_id, "rule_number": i, "rule_text": r.text,
            "n_customers": r.n_customers, "n_insiders": r.n_insiders, "precision": round(r.precision, 6),
            "recall": round(r.recall, 6), "tree_accuracy": round(accuracy, 6),
        } for i, r in enumerate(rules, start=1)])
        summary = _summary(features, segments)
        insiders = summary[summary["is_insider"]]
        metrics = {"insider_customer_share": float(insiders["customer_share"].sum()),
                   "insider_revenue_share": float(insiders["revenue_share"].sum()),
                   "insider_rule_tree_accuracy": accuracy}
        if candidates:
            chosen = next(c for c in candidates if c.selected)
            metrics.update(silhouette=chosen.silhouette, davies_bouldin=chosen.davies_bouldin,
                           calinski_harabasz=chosen.calinski_harabasz, stability=chosen.stability)
        store.write_run(conn, run={
            "run_id": run_id, "as_of_date": as_of, "mode": mode, "model_run_id": model_run_id,
            "candidate_id": model.candidate_id, "n_segments": len(model.segments),
            "n_customers": len(features), "parameters": config.as_dict(), "metrics": metrics,
            "counts": {str(row.segment_id): int(row.n_customers) for row in summary.itertuples()},
            "stage_seconds": timer.timings, "artifact_path": str(artifact), "artifact_sha256": sha256,
            "library_versions": model.library_versions,
        }, candidates=candidates, model=model if mode == "fit" else None, segments=segments, rules=rules_frame,
            as_of=as_of)
    _log_summary(summary, rules, accuracy, time.perf_counter() - started)
    return ClusterResult(run_id, mode, as_of, summary, metrics["insider_customer_share"],
                         metrics["insider_revenue_share"])


def _summary(features: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    frame = segments.assign(gross_revenue=features["gross_revenue"].astype(float).to_numpy())
    summary = frame.groupby(["segment_id", "segment_name", "is_insider"], as_index=False).agg(
        n_customers=("customer_id", "size"), gross_revenue=("gross_revenue", "sum"))
    summary["customer_share"] = summary["n_customers"] / summary["n_customers"].sum()
    summary["revenue_share"] = summary["gross_revenue"] / summary["gross_revenue"].sum()
    return summary.sort_values("segment_id").reset_index(drop=True)


def _log_summary(summary: pd.DataFrame, rules: list, accuracy: float, seconds: float) -> None:
    for row in summary.itertuples():
        log.info("  segment %d %-20s %6s customers (%5.1f%%)  %5.1f%% of gross revenue", row.segment_id,
                 row.segment_name, f"{row.n_customers:,}", 100 * row.customer_share, 100 * row.revenue_share)
    insiders = summary[summary["segment_name"] == INSIDERS].iloc[0]
    log.info("the Insiders: %s customers (%.1f%%) bring %.1f%% of gross revenue", f"{insiders.n_customers:,}",
             100 * insiders.customer_share, 100 * insiders.revenue_share)
    for rule in rules[:3]:
        log.info("  Insider if %s (%d customers, precision %.0f%%)", rule.text, rule.n_customers,
                 100 * rule.precision)
    log.info("clustering done in %.1f s; rule tree accuracy %.1f%%", seconds, 100 * accuracy)
