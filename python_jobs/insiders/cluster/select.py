"""The selection rule, applied to the scored grid.

1. Eligible candidates have between `segments_min` and `segments_max` segments (what a marketing team can act
   on; the seeds settled on 8 for the same reason), no segment under `min_segment_share` of customers, at most
   10% noise, a segment with the highest revenue per customer that holds at most `insider_max_share` of
   customers (a loyalty program is for a few, so the partition must have an Insiders segment of that size), and
   a stability (mean adjusted Rand index over resamples) of at least `min_stability`.
2. Among them, the highest Calinski-Harabasz index in the scaled feature space wins (ties go to fewer segments).
   It weighs the spread between segments against the spread within them over the whole partition; silhouette,
   averaged point by point, rewards folding a small distinct segment (the top spenders) into a big one, and on
   both the demo and the real data it prefers one segment fewer than the structure holds.
3. When none is eligible, the stability bar is dropped and the rule says so in the log and in ml.model_runs.
"""

from __future__ import annotations

import logging
import math

from ..errors import InsidersError
from .candidates import Candidate
from .config import ClusterConfig

log = logging.getLogger(__name__)
MAX_NOISE_SHARE = 0.10


def _fails(candidate: Candidate, config: ClusterConfig, check_stability: bool) -> str:
    if not config.segments_min <= candidate.n_clusters <= config.segments_max:
        return f"{candidate.n_clusters} segments outside {config.segments_min}-{config.segments_max}"
    if candidate.smallest_share < config.min_segment_share:
        return f"smallest segment {candidate.smallest_share:.1%} < {config.min_segment_share:.0%}"
    if candidate.noise_share > MAX_NOISE_SHARE:
        return f"noise {candidate.noise_share:.0%} > {MAX_NOISE_SHARE:.0%}"
    if candidate.top_segment_share > config.insider_max_share:
        return f"top-revenue segment holds {candidate.top_segment_share:.0%} > {config.insider_max_share:.0%}"
    if check_stability and not candidate.stability >= config.min_stability:
        return f"stability {candidate.stability:.2f} < {config.min_stability}"
    if math.isnan(candidate.silhouette):
        return "no silhouette"
    return ""


def select(candidates: list[Candidate], config: ClusterConfig) -> tuple[Candidate, bool]:
    """The winning candidate, and whether the stability bar had to be dropped to find one."""
    for check_stability in (True, False):
        for candidate in candidates:
            candidate.rejection = _fails(candidate, config, check_stability)
            candidate.eligible = candidate.rejection == ""
        eligible = [c for c in candidates if c.eligible]
        if eligible:
            best = max(eligible, key=lambda c: (round(c.calinski_harabasz, 3), -c.n_clusters))
            best.selected = True
            if not check_stability:
                log.warning("no candidate reached stability %.2f; chose the best candidate without that bar",
                            config.min_stability)
            return best, not check_stability
    raise InsidersError("no clustering candidate has a usable number of segments; widen segments_min/max")
