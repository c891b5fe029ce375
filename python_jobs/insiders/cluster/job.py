"""`insiders cluster`: read the mart, fit (or score with the saved model), name, explain, write back."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from ..forecast.job import Forecast, forecast_customers, horizons_with, revenue_calibration
from ..program import rankings
from ..program.choice import (
    FALLBACK,
    FORECAST_RANKING,
    ProgramChoice,
    RecentWindow,
    candidate_scores,
    choose_definition,
    keep_calibration,
    recent_window,
    scored_candidates,
)
from ..program.config import ProgramConfig
from ..program.cutoffs import training_cutoff
from ..program.hypotheses import measure_hypotheses
from ..progress import StageTimer
from ..settings import Paths
from ..warehouse import FitRecord, Warehouse, run_tables
from . import store
from .candidates import Candidate, embed, run_grid
from .config import ClusterConfig
from .features import feature_matrix, make_preprocessor
from .identity import match_segments
from .model import SegmentDefinition, SegmentModel, centroid_distances, log_profile, sampled_tsne
from .naming import name_segments, profile_segments, top_segment
from .rules import insider_rules
from .select import Selection, select

log = logging.getLogger("insiders")


@dataclass
class ClusterResult:
    run_id: str
    mode: str
    as_of: date
    summary: pd.DataFrame  # one row per segment
    insider_definition: str
    n_insiders: int
    insider_customer_share: float
    insider_revenue_share: float
    choice_reason: str
    # in memory for the backtest: the customers, every candidate's ranking score, the members, the forecast
    features: pd.DataFrame
    scores: dict[str, np.ndarray]
    is_insider: np.ndarray
    forecast: Forecast


def library_versions() -> dict[str, str]:
    packages = ("scikit-learn", "numpy", "scipy", "pandas", "umap-learn", "joblib")
    return {"python": platform.python_version(), **{name: version(name) for name in packages}}


def fit_model(features: pd.DataFrame, config: ClusterConfig, as_of: date,
              previous: SegmentModel | None) -> tuple[SegmentModel, list[Candidate], Selection]:
    preprocessor = make_preprocessor()
    scaled = preprocessor.fit_transform(feature_matrix(features, config.features))
    revenue = features["gross_revenue"].astype(float).to_numpy()
    candidates, fits = [], {}
    for candidate, fitted, embedding in run_grid(scaled, revenue, config):
        candidates.append(candidate)
        fits[candidate.candidate_id] = (fitted, embedding)
    selection = select(candidates, config)
    best = selection.best
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
    top_label = top_segment(profiles)
    names = name_segments(profiles, features)
    logs = log_profile(features, config)
    new_centroids = {int(label): logs[final == label].mean(axis=0) for label in profiles.index}
    previous_centroids = {s.segment_id: np.array(s.profile["log_centroid"]) for s in previous.segments} \
        if previous and previous.config.features == config.features else {}
    label_to_segment = match_segments(new_centroids, previous_centroids, logs.std(axis=0),
                                      config.match_max_distance, [int(label) for label in profiles.index])
    segments = [
        SegmentDefinition(
            segment_id=label_to_segment[int(label)],
            name=names[int(label)],
            is_top_segment=int(label) == top_label,
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
    return model, candidates, selection


def months_between(earlier: date, later: date) -> int:
    """Whole months from `earlier` to `later`."""
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    return months - 1 if later.day < earlier.day else months


def refit_reason(fit: FitRecord | None, as_of: date, refit: bool, config: ClusterConfig) -> str:
    """Why this as-of date needs a new model, or "" to score with the latest one fitted on data up to it."""
    if refit:
        return "asked (--refit)"
    if fit is None:
        return f"no model fitted on data up to {as_of}"
    age = months_between(fit.data_cutoff, as_of)
    if age >= config.refit_every_months:
        return f"the model's data ends {fit.data_cutoff}, {age} months before (refit every {config.refit_every_months})"
    return ""


def same_kind_grid(model: SegmentModel) -> ClusterConfig:
    """A grid of one candidate, the model's own (embedding, algorithm and k), to refit on other data."""
    embedding, algorithm, *k = model.candidate_id.split("/")
    grid = replace(model.config, embeddings=(embedding,), algorithms=(algorithm,))
    if k:
        n = int(k[0].removeprefix("k="))
        grid = replace(grid, k_min=n, k_max=n)
    return grid


def tsne_map(model: SegmentModel, features: pd.DataFrame, seed: int) -> np.ndarray:
    """t-SNE of this run's customers in the model's scaled space: a picture, recomputed per run, on a bounded
    sample (everyone else placed beside their nearest sampled customers)."""
    scaled = model.preprocessor.transform(feature_matrix(features, model.config.features))
    return sampled_tsne(scaled, features["gross_revenue"].to_numpy(dtype=float), seed, model.config.fit_sample)


def calibrated_forecast(warehouse: Warehouse, as_of: date, features: pd.DataFrame, data_start: date,
                        program: ProgramConfig, window: Callable[[], RecentWindow | None]) -> Forecast:
    """The spend forecast at `as_of`, its revenue scaled by how the same models did on the latest window that ends
    by `as_of` (forecast from its start, judged on its lines): both use data up to `as_of` only. The window is
    the same for every date of a month: its factor is measured once and read back (ml.forecast_calibrations),
    and `window()` read only to measure it."""
    forecast = forecast_customers(features, horizons_with(program.horizon_days))
    start = training_cutoff(as_of, data_start, program)
    if start is None:
        return forecast.calibrated(1.0, f"no calibration: less than {program.min_history_days} days of data before "
                                        f"the last month-end {program.horizon_days} days before {as_of}")
    end = start + timedelta(days=program.horizon_days)
    factor = warehouse.cached_calibration(start, program.horizon_days)
    if factor is None:
        recent = window()  # the window starting at `start`: there is enough history before it
        factor = revenue_calibration(recent.features, recent.outcome["gross_revenue"], program.horizon_days)
        keep_calibration(warehouse, start, program.horizon_days, factor)
    log.info("spend forecast calibrated by %.3f (actual / forecast revenue of %s to %s)", factor, start, end)
    return forecast.calibrated(factor, f"actual / forecast revenue of the {program.horizon_days} days after {start}")


def run_clustering(warehouse: Warehouse, paths: Paths, *, as_of: date | None = None, refit: bool = False,
                   config: ClusterConfig | None = None, program: ProgramConfig | None = None,
                   every_candidate: bool = False) -> ClusterResult:
    """Label the customers of one as-of date: segments (with the model in force at that date, or a new fit under
    the refit policy), the spend forecast, and the program's members; everything uses lines up to that date.
    The result's `scores` hold the chosen definition's ranking, and every candidate's with `every_candidate`
    (what a backtest compares; training the revenue model no run used took 40% of the labelling of 27,602
    customers)."""
    timer = StageTimer()
    started = time.perf_counter()
    requested = config or ClusterConfig()
    program = program or ProgramConfig()
    with timer.stage("read features"):
        warehouse.ensure_ml_schema()
        as_of = as_of or warehouse.latest_as_of()
        features = warehouse.read_features(as_of)
        in_force = warehouse.latest_fit(as_of)
        log.info("read %s customers as of %s", f"{len(features):,}", as_of)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    candidates: list[Candidate] = []
    limits: dict[str, object] = {}
    reason = refit_reason(in_force, as_of, refit, requested)
    if reason:
        mode, config = "fit", requested
        with timer.stage("fit segments"):
            previous = store.load_model(in_force) if in_force else None
            model, candidates, selection = fit_model(features, config, as_of, previous)
            artifact, sha256 = store.save_model(model, paths.artifacts_dir, run_id)
            model_run_id = run_id
            limits = selection.as_dict()
            chosen = selection.best
            log.info("fitted a model (%s): chose %s out of %d candidates (calinski-harabasz %.0f, silhouette %.3f, "
                     "stability %.3f)", reason, chosen.candidate_id, len(candidates), chosen.calinski_harabasz,
                     chosen.silhouette, chosen.stability)
    else:
        mode = "score"
        with timer.stage("score with the model in force"):
            model = store.load_model(in_force)
            model_run_id, artifact, sha256 = in_force.run_id, in_force.artifact, in_force.sha256
            config = model.config
            log.info("scoring with the model fitted in run %s (%s, data up to %s)", model_run_id,
                     model.candidate_id, model.fitted_as_of)
    with timer.stage("assign segments"):
        assignment = warehouse.assign_segments(model, as_of, features)
        if requested.map_embedding == "tsne":  # the map is a picture: it follows the request, not the model
            assignment.map_xy = tsne_map(model, features, config.seed)
    data_start = date.fromisoformat(str(features["first_purchase_date"].min())[:10])
    read: list[RecentWindow | None] = []

    def window() -> RecentWindow | None:
        """The recent window, read once and only when something needs it."""
        if not read:
            read.append(recent_window(warehouse, as_of, data_start, program))
        return read[0]

    gross, ids = features["gross_revenue"].to_numpy(dtype=float), features["customer_id"].to_numpy()

    def rank(choice: ProgramChoice, wanted: set[str], forecast: Forecast | None,
             ) -> tuple[dict[str, np.ndarray], str, np.ndarray, int, np.ndarray]:
        scores = candidate_scores(features, program, forecast=forecast, segment_id=assignment.segment_id,
                                  window=window() if "trained_model" in wanted else None, wanted=wanted)
        definition = choice.definition if choice.definition in scores else FALLBACK
        program_rank = rankings.ranks(scores[definition], gross, ids)
        size = program.program_size(len(features))
        log.info("the Insiders are the top %d customers (%.0f%%, the program's size) by %s: %s", size,
                 100 * program.program_share, definition, choice.reason)
        return scores, definition, program_rank, size, program_rank <= size

    # The hypotheses (a bootstrap and permutation tests, the longest step of a day's labelling at 90,000
    # customers) need the Insiders only: they are measured in a second thread while the forecast, the rules and
    # the rows to write are computed. So the Insiders are chosen before the forecast, unless it ranks them.
    with ThreadPoolExecutor(max_workers=1) as pool:
        with timer.stage("choose the Insiders"):
            choice = choose_definition(warehouse, as_of, data_start, program, same_kind_grid(model))
            wanted = scored_candidates(program) if every_candidate else {choice.definition, FALLBACK}
            ranked = None if FORECAST_RANKING in wanted else rank(choice, wanted, None)
        measured = pool.submit(measure_hypotheses, features, ranked[-1], resamples=program.bootstrap_resamples,
                               seed=program.seed) if ranked else None
        with timer.stage("forecast spend"):
            forecast = calibrated_forecast(warehouse, as_of, features, data_start, program, window)
        if ranked is None or measured is None:
            with timer.stage("rank the Insiders by the forecast"):
                ranked = rank(choice, wanted, forecast)
            measured = pool.submit(measure_hypotheses, features, ranked[-1],
                                   resamples=program.bootstrap_resamples, seed=program.seed)
        scores, definition, program_rank, size, is_insider = ranked
        with timer.stage("explain and write"):
            by_id = {s.segment_id: s for s in model.segments}
            segments = pd.DataFrame({
                "customer_id": features["customer_id"].astype("int64"),
                "as_of_date": as_of,
                "run_id": run_id,
                "segment_id": assignment.segment_id.astype(int),
                "segment_name": [by_id[s].name for s in assignment.segment_id],
                "is_insider": is_insider,
                "program_rank": program_rank.astype(int),
                "confidence": assignment.confidence.round(6),
                "distance_to_centroid": assignment.distance.round(6),
                "map_x": assignment.map_xy[:, 0].round(6),
                "map_y": assignment.map_xy[:, 1].round(6),
            })
            forecasts = forecast.customers.assign(as_of_date=as_of, run_id=run_id)[[
                "customer_id", "as_of_date", "run_id", "p_alive", "expected_purchases_90d", "expected_revenue_90d",
                "expected_revenue_365d"]].round(6)
            rules, accuracy = insider_rules(features, is_insider, config)
            rules_frame = pd.DataFrame([{
                "as_of_date": as_of, "run_id": run_id, "rule_number": i, "rule_text": r.text,
                "n_customers": r.n_customers, "n_insiders": r.n_insiders, "precision": round(r.precision, 6),
                "recall": round(r.recall, 6), "tree_accuracy": round(accuracy, 6),
            } for i, r in enumerate(rules, start=1)])
            summary = _summary(features, segments)
            insider_revenue_share = float(gross[is_insider].sum() / max(gross.sum(), 1e-12))
            metrics: dict[str, object] = {
                "insider_customer_share": float(is_insider.mean()), "insider_revenue_share": insider_revenue_share,
                "insider_rule_tree_accuracy": accuracy, "forecast": forecast.estimates}
            if candidates:
                chosen = next(c for c in candidates if c.selected)
                metrics.update(silhouette=chosen.silhouette, davies_bouldin=chosen.davies_bouldin,
                               calinski_harabasz=chosen.calinski_harabasz, stability=chosen.stability)
            run = {
                "run_id": run_id, "as_of_date": as_of, "mode": mode, "model_run_id": model_run_id,
                "data_cutoff_date": model.fitted_as_of, "refit_reason": reason,
                "candidate_id": model.candidate_id, "n_segments": len(model.segments),
                "n_customers": len(features), "parameters": config.as_dict(), "metrics": metrics,
                "counts": {str(row.segment_id): int(row.n_customers) for row in summary.itertuples()},
                "stage_seconds": timer.timings, "artifact_path": str(artifact), "artifact_sha256": sha256,
                "library_versions": model.library_versions, "insider_definition": definition,
                "program": {**choice.as_dict(), "program_size": size, "config": program.as_dict()},
                "limits": {**limits, "program_share": program.program_share,
                           "program_share_binds": "always: the program's size is configuration"},
            }
            # the hypotheses are waited for when their table is written, after the customers' rows
            warehouse.write_run(run_tables(
                run, selection=store.selection_frame(run_id, candidates),
                definitions=store.definitions_frame(run_id, model) if mode == "fit" else None, segments=segments,
                rules=rules_frame, forecasts=forecasts,
                hypotheses=lambda: measured.result().assign(as_of_date=as_of, run_id=run_id)), as_of)
    _log_summary(summary, rules, accuracy, time.perf_counter() - started)
    return ClusterResult(run_id, mode, as_of, summary, definition, int(is_insider.sum()), float(is_insider.mean()),
                         insider_revenue_share, choice.reason, features, scores, is_insider, forecast)


def _summary(features: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    frame = segments.assign(gross_revenue=features["gross_revenue"].astype(float).to_numpy())
    summary = frame.groupby(["segment_id", "segment_name"], as_index=False).agg(
        n_customers=("customer_id", "size"), n_insiders=("is_insider", "sum"), gross_revenue=("gross_revenue", "sum"))
    summary["customer_share"] = summary["n_customers"] / summary["n_customers"].sum()
    summary["revenue_share"] = summary["gross_revenue"] / summary["gross_revenue"].sum()
    return summary.sort_values("segment_id").reset_index(drop=True)


def _log_summary(summary: pd.DataFrame, rules: list, accuracy: float, seconds: float) -> None:
    for row in summary.itertuples():
        log.debug("  segment %d %-20s %6s customers (%5.1f%%)  %5.1f%% of gross revenue", row.segment_id,
                 row.segment_name, f"{row.n_customers:,}", 100 * row.customer_share, 100 * row.revenue_share)
    insiders = int(summary["n_insiders"].sum())
    log.debug("the Insiders: %s customers (%.1f%%) in %d segments", f"{insiders:,}",
             100 * insiders / max(1, int(summary["n_customers"].sum())), int((summary["n_insiders"] > 0).sum()))
    for rule in rules[:3]:
        log.debug("  Insider if %s (%d customers, precision %.0f%%)", rule.text, rule.n_customers,
                 100 * rule.precision)
    log.debug("clustering done in %.1f s; rule tree accuracy %.1f%%", seconds, 100 * accuracy)
