"""The selection rule, applied to the scored grid.

1. Eligible candidates have between `segments_min` and `segments_max` segments (what a marketing team can act
   on; the seeds settled on 8 for the same reason), no segment under `min_segment_share` of customers, at most
   10% noise, and a stability (mean adjusted Rand index over resamples) of at least `min_stability`.
2. Among them, the highest Calinski-Harabasz index in the scaled feature space wins (ties go to fewer segments).
   It weighs the spread between segments against the spread within them over the whole partition; silhouette,
   averaged point by point, rewards folding a small distinct segment (the top spenders) into a big one, and on
   both the demo and the real data it prefers one segment fewer than the structure holds.
3. These bounds are business limits, not findings. When one of them rejected the candidate with the highest
   Calinski-Harabasz, the run records it as binding. When no candidate passes, the limits are relaxed one at a
   time (stability, then the smallest segment's share, then noise, then the number of segments) until one does:
   a shop whose data fits none of them still gets its segments, and the run says which limit it relaxed.
4. Above `fit_sample` customers every candidate is fitted and scored on the same stratified sample (candidates.py);
   the selection records the sample's size next to the customer count, so a run says when it sampled.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from ..errors import InsidersError
from .candidates import Candidate
from .config import ClusterConfig

log = logging.getLogger("insiders")
MAX_NOISE_SHARE = 0.10
LIMITS = ("segments", "noise", "min_segment_share", "stability")  # relaxed from the last one


@dataclass
class Selection:
    best: Candidate
    relaxed: list[str] = field(default_factory=list)  # limits dropped to find an eligible candidate
    binding: list[str] = field(default_factory=list)  # limits that rejected the highest-scoring candidate

    def as_dict(self) -> dict[str, object]:
        return {"relaxed": self.relaxed, "binding": self.binding,
                "fit_sample": {"n_customers": self.best.n_customers, "fitted_on": self.best.sample_size,
                               "sampled": self.best.sample_size < self.best.n_customers}}


def _fails(candidate: Candidate, config: ClusterConfig, limits: tuple[str, ...]) -> tuple[str, str]:
    """(limit, reason) of the first limit the candidate breaks, or ("", "")."""
    if math.isnan(candidate.silhouette):
        return "", "fewer than two segments"
    checks = {
        "segments": (not config.segments_min <= candidate.n_clusters <= config.segments_max,
                     f"{candidate.n_clusters} segments outside {config.segments_min}-{config.segments_max}"),
        "min_segment_share": (candidate.smallest_share < config.min_segment_share,
                              f"smallest segment {candidate.smallest_share:.1%} < {config.min_segment_share:.0%}"),
        "noise": (candidate.noise_share > MAX_NOISE_SHARE,
                  f"noise {candidate.noise_share:.0%} > {MAX_NOISE_SHARE:.0%}"),
        "stability": (not candidate.stability >= config.min_stability,
                      f"stability {candidate.stability:.2f} < {config.min_stability}"),
    }
    for limit in LIMITS:
        failed, reason = checks[limit]
        if limit in limits and failed:
            return limit, reason
    return "", ""


def _rank(candidate: Candidate) -> tuple[float, int]:
    return round(candidate.calinski_harabasz, 3), -candidate.n_clusters


def select(candidates: list[Candidate], config: ClusterConfig) -> Selection:
    """The winning candidate, which limits were relaxed to find one, and which decided the outcome."""
    scored = [c for c in candidates if not math.isnan(c.silhouette)]
    if not scored:
        raise InsidersError("no clustering candidate found two segments or more: the customers are too few or alike")
    for dropped in range(len(LIMITS) + 1):
        limits = LIMITS[: len(LIMITS) - dropped]
        for candidate in candidates:
            _, candidate.rejection = _fails(candidate, config, limits)
            candidate.eligible = candidate.rejection == ""
        eligible = [c for c in candidates if c.eligible]
        if eligible:
            best = max(eligible, key=_rank)
            best.selected = True
            relaxed = list(LIMITS[len(LIMITS) - dropped:])
            if relaxed:
                log.warning("no clustering candidate met every limit; relaxed: %s", ", ".join(relaxed))
            top = max(scored, key=_rank)
            binding = [] if top is best else [_fails(top, config, LIMITS)[0] or "relaxed order"]
            return Selection(best, relaxed, binding)
    raise InsidersError("no clustering candidate could be selected")  # unreachable: the last pass has no limits
