"""Which definition makes the Insiders: the one that captured the most future revenue in backtests that end by
the as-of date, measured at the program's size.

Inner cutoffs lie `horizon_days` or more before the as-of date, so every horizon they are judged on ends by it:
the choice at date D uses lines up to D only. The strongest simple rule (top past revenue, RFM score) is the
default; a challenger replaces it only when it captured at least `min_share_gain` more on average and more at
every inner cutoff, over at least `min_backtests_to_switch` inner cutoffs. With no inner cutoff (too little
history) the run uses top past revenue and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from ..cluster.config import ClusterConfig
from ..errors import InsidersError
from ..forecast.job import Forecast, forecast_customers, horizons_with
from ..warehouse import InnerBacktestRow, Warehouse
from . import rankings
from .config import SIMPLE_RULES, ProgramConfig
from .cutoffs import inner_cutoffs, training_cutoff
from .evaluate import revenue_shares
from .outcomes import aligned

log = logging.getLogger("insiders")
FALLBACK = "top_past_revenue"
FORECAST_RANKING = "top_expected_revenue"  # the only candidate that ranks by the spend forecast


@dataclass
class ProgramChoice:
    definition: str
    reason: str
    inner_cutoffs: list[date]
    # one row per inner cutoff and candidate: the share of the horizon's revenue its top group captured
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)

    def as_dict(self) -> dict[str, object]:
        means = self.evidence.groupby("candidate")["future_revenue_share"].mean() if not self.evidence.empty \
            else pd.Series(dtype=float)
        return {"definition": self.definition, "reason": self.reason,
                "inner_cutoffs": [d.isoformat() for d in self.inner_cutoffs],
                "mean_future_revenue_share": {k: round(float(v), 6) for k, v in means.items()},
                # a candidate that could not be computed at a cutoff has no share there: null, not NaN's text
                "evidence": [{**row, "cutoff_date": row["cutoff_date"].isoformat(),
                              "future_revenue_share": None if pd.isna(row["future_revenue_share"])
                              else row["future_revenue_share"]}
                             for row in self.evidence.to_dict("records")]}


@dataclass
class RecentWindow:
    """The `horizon_days` ending at a date: the mart at the window's start and what each customer bought in it.
    The trained model learns from it and the forecast is calibrated on it; read once, used by both."""

    start: date
    features: pd.DataFrame
    outcome: pd.DataFrame  # future_revenue(start, horizon_days)


def recent_window(warehouse: Warehouse, day: date, data_start: date, config: ProgramConfig,
                  ) -> RecentWindow | None:
    """The window ending at `day`, or None with too little history before its start."""
    start = training_cutoff(day, data_start, config)
    if start is None:
        return None
    return RecentWindow(start, warehouse.read_features(start), warehouse.future_revenue(start, config.horizon_days))


def horizon_all_loaded(warehouse: Warehouse, start: date, horizon_days: int) -> bool:
    """Whether every day of the horizon after `start` is loaded: until then later lines may still change what is
    measured on it, so it is not kept."""
    last_day = warehouse.last_sales_day()
    return last_day is not None and start + timedelta(days=horizon_days) <= last_day


def keep_calibration(warehouse: Warehouse, window_start: date, horizon_days: int, factor: float) -> None:
    """Keep a window's calibration (in the caller's transaction) once its horizon is all loaded."""
    if horizon_all_loaded(warehouse, window_start, horizon_days):
        warehouse.keep_calibration(window_start, horizon_days, factor)


def scored_candidates(config: ProgramConfig) -> set[str]:
    """The candidates a run scores: the configured ones, and always the simple rules and the forecast's ranking,
    which are the fallback and the backtests' baselines."""
    return set(config.candidates) | set(SIMPLE_RULES) | {FORECAST_RANKING}


def candidate_scores(features: pd.DataFrame, config: ProgramConfig, *, forecast: Forecast | None,
                     segment_id: np.ndarray | None, window: RecentWindow | None,
                     wanted: set[str] | None = None) -> dict[str, np.ndarray]:
    """Every computable candidate's ranking score for the customers of `features` (the mart at one date; `window`
    is the one ending there), of those `wanted` (default: the configured candidates, the simple rules and the
    forecast's ranking, which are the fallback and the backtests' baselines)."""
    wanted = wanted if wanted is not None else scored_candidates(config)
    scores = {
        "top_past_revenue": features["gross_revenue"].to_numpy(dtype=float),
        "net_revenue": features["net_revenue"].to_numpy(dtype=float),
        "decayed_revenue": features["decayed_revenue"].to_numpy(dtype=float),
        "rfm_score": rankings.rfm_score(features).astype(float),
    }
    if forecast is not None:
        scores[FORECAST_RANKING] = forecast.expected_revenue(config.horizon_days)
    if segment_id is not None:
        scores["top_segment"] = rankings.segment_score(segment_id, scores["top_past_revenue"])
    if "trained_model" in wanted and window is not None:
        model = rankings.train_revenue_model(window.features, window.outcome["net_revenue"], config.seed)
        scores["trained_model"] = model.predict(rankings.training_matrix(features))
    return {name: score for name, score in scores.items() if name in wanted}


def _segments_fitted_at(warehouse: Warehouse, features: pd.DataFrame, day: date,
                        cluster_config: ClusterConfig) -> np.ndarray | None:
    """Segments of a model fitted on this cutoff's customers, or None (the candidate sits this cutoff out) when
    they are too few or alike to cluster. `cluster_config` is the grid to fit: the job passes the one candidate
    of the model in force (its embedding, algorithm and k), refitted on the cutoff's customers, so that the
    backtest judges the kind of segments the run uses at the cost of one fit instead of a whole grid."""
    from ..cluster.job import fit_model

    try:
        model, _, _ = fit_model(features, cluster_config, day, previous=None)
    except (InsidersError, ValueError) as exc:
        log.warning("top_segment left out at the inner cutoff %s: %s", day, exc)
        return None
    return warehouse.assign_segments(model, day, features).segment_id


def measure_inner_cutoff(warehouse: Warehouse, cutoff: date, data_start: date, config: ProgramConfig,
                         cluster_config: ClusterConfig, wanted: set[str]) -> pd.DataFrame:
    """Each `wanted` candidate's share of the horizon's net revenue at `cutoff`, at the program's size."""
    features = warehouse.read_features(cutoff)
    segment_id = _segments_fitted_at(warehouse, features, cutoff, cluster_config) if "top_segment" in wanted else None
    window = recent_window(warehouse, cutoff, data_start, config) if "trained_model" in wanted else None
    forecast = forecast_customers(features, horizons_with(config.horizon_days)) \
        if "top_expected_revenue" in wanted else None
    scores = candidate_scores(features, config, forecast=forecast, segment_id=segment_id, window=window,
                              wanted=wanted)
    net = aligned(warehouse.future_revenue(cutoff, config.horizon_days), features["customer_id"], "net_revenue")
    size = config.program_size(len(features))
    gross, ids = features["gross_revenue"].to_numpy(dtype=float), features["customer_id"].to_numpy()
    names = sorted(scores)
    groups = np.column_stack([rankings.top_n(scores[name], gross, ids, size) for name in names]) if names \
        else np.zeros((len(ids), 0), dtype=bool)
    shares = revenue_shares(net.to_numpy(), groups.astype(float)).round(6)
    # a candidate that cannot be computed at this cutoff is recorded as such (no share), not measured again
    uncomputable = sorted(wanted - set(names))
    return pd.DataFrame({"cutoff_date": cutoff, "candidate": names + uncomputable, "n_customers": size,
                         "future_revenue_share": [*shares, *[np.nan] * len(uncomputable)]})


# the one candidate whose inner backtest depends on the segment model (its kind is refitted at the cutoff)
SEGMENT_CANDIDATES = {"top_segment"}
# settings of the clustering that do not change which segments a fit makes
GRID_FIELDS_NOT_FITTED = {"map_embedding", "refit_every_months", "match_max_distance", "rule_tree_depth",
                          "rule_features"}


def settings_key(config: ProgramConfig, data_start: date, cluster_config: ClusterConfig | None = None) -> str:
    """What an inner backtest's result depends on besides its cutoff, as a short hash; the segment grid only for
    the candidates that use segments."""
    grid = {name: value for name, value in cluster_config.as_dict().items() if name not in GRID_FIELDS_NOT_FITTED} \
        if cluster_config else None
    settings = {"program_share": config.program_share, "horizon_days": config.horizon_days,
                "min_history_days": config.min_history_days, "seed": config.seed, "data_start": data_start,
                "grid": grid}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def inner_backtest(warehouse: Warehouse, cutoff: date, data_start: date, config: ProgramConfig,
                   cluster_config: ClusterConfig) -> pd.DataFrame:
    """The inner backtest at `cutoff`: each candidate read from ml.inner_backtests when it was measured with the
    same settings, the others measured now and kept there (in the caller's transaction)."""
    wanted = scored_candidates(config)
    keys = {name: settings_key(config, data_start, cluster_config if name in SEGMENT_CANDIDATES else None)
            for name in wanted}
    rows = warehouse.kept_inner_backtests(cutoff, config.horizon_days, sorted(wanted), sorted(set(keys.values())))
    known = pd.DataFrame([(row.candidate, row.n_customers, row.future_revenue_share) for row in rows
                          if keys[row.candidate] == row.settings_key],
                         columns=["candidate", "n_customers", "future_revenue_share"])
    known = known.assign(cutoff_date=cutoff).astype({"future_revenue_share": float})
    missing = wanted - set(known["candidate"])
    if not missing:
        return known[["cutoff_date", "candidate", "n_customers", "future_revenue_share"]]
    measured = measure_inner_cutoff(warehouse, cutoff, data_start, config, cluster_config, missing)
    if not horizon_all_loaded(warehouse, cutoff, config.horizon_days):
        return pd.concat([known, measured], ignore_index=True)
    warehouse.keep_inner_backtests([
        InnerBacktestRow(cutoff, config.horizon_days, keys[row.candidate], row.candidate, int(row.n_customers),
                         None if np.isnan(row.future_revenue_share) else float(row.future_revenue_share))
        for row in measured.itertuples()])
    return pd.concat([known, measured], ignore_index=True)[
        ["cutoff_date", "candidate", "n_customers", "future_revenue_share"]]


def choose_definition(warehouse: Warehouse, as_of: date, data_start: date, config: ProgramConfig,
                      cluster_config: ClusterConfig) -> ProgramChoice:
    cutoffs = inner_cutoffs(as_of, data_start, config)
    if not cutoffs:
        reason = (f"too little history for a backtest ending by {as_of} (the data starts {data_start}; a cutoff "
                  f"needs {config.min_history_days} days before it and {config.horizon_days} after): "
                  f"the strongest simple rule, {FALLBACK}")
        return ProgramChoice(FALLBACK, reason, [])
    evidence = pd.concat([inner_backtest(warehouse, c, data_start, config, cluster_config) for c in cutoffs],
                         ignore_index=True).sort_values(["cutoff_date", "candidate"], ignore_index=True)
    definition, reason = decide(evidence, config)
    return ProgramChoice(definition, reason, cutoffs, evidence)


def decide(evidence: pd.DataFrame, config: ProgramConfig) -> tuple[str, str]:
    """The definition and the reason, from each candidate's share of future revenue at each inner cutoff."""
    table = evidence.pivot(index="cutoff_date", columns="candidate", values="future_revenue_share")
    n_cutoffs = len(table)
    complete = table.dropna(axis=1)  # a candidate is judged only where it could be computed at every cutoff
    means = complete.mean().sort_values(ascending=False, kind="stable")
    simple = [name for name in means.index if name in SIMPLE_RULES]
    baseline = simple[0] if simple else FALLBACK
    challengers = [name for name in means.index if name not in SIMPLE_RULES]
    if not challengers or baseline not in complete:
        return baseline, f"only simple rules could be measured; {baseline} did best"

    def gain(name: str) -> float:
        return float(means[name] - means[baseline])

    def wins(name: str) -> int:
        return int((complete[name] > complete[baseline]).sum())

    def summary(name: str) -> str:
        return (f"{name} captured {means[name]:.1%} of the horizons' revenue on average against "
                f"{means[baseline]:.1%} for {baseline} ({gain(name) * 100:+.1f} points, more at {wins(name)} of "
                f"{n_cutoffs} inner cutoffs)")

    passing = [name for name in challengers if gain(name) >= config.min_share_gain and wins(name) == n_cutoffs]
    if passing and n_cutoffs >= config.min_backtests_to_switch:
        return passing[0], summary(passing[0])
    if n_cutoffs < config.min_backtests_to_switch:
        return baseline, (f"{n_cutoffs} inner backtests are too few to replace {baseline} (at least "
                          f"{config.min_backtests_to_switch}): {summary(challengers[0])}")
    return baseline, (f"no challenger beat {baseline} by {config.min_share_gain * 100:.1f} points on average and at "
                      f"every inner cutoff: {summary(challengers[0])}")
