"""Stable segment ids: a refit's segments are matched to the previous model's by their profiles.

Profiles are compared in log feature space (no fitted parameters, so two fits are comparable), each feature
divided by its spread over the current customers. Matching is an optimal assignment on those distances; a pair
further apart than `max_distance` (root mean square, in standard deviations) is no match, and the new segment
gets a fresh id.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def match_segments(new_centroids: dict[int, np.ndarray], previous_centroids: dict[int, np.ndarray],
                   spread: np.ndarray, max_distance: float, order: list[int]) -> dict[int, int]:
    """New label -> segment id. Unmatched labels get ids after the largest previous id, in `order`."""
    mapping: dict[int, int] = {}
    if previous_centroids:
        new_labels, old_ids = list(new_centroids), list(previous_centroids)
        scale = np.where(spread > 0, spread, 1.0)
        distances = np.array([[np.sqrt(np.mean(((new_centroids[n] - previous_centroids[o]) / scale) ** 2))
                               for o in old_ids] for n in new_labels])
        for row, col in zip(*linear_sum_assignment(distances), strict=True):
            if distances[row, col] <= max_distance:
                mapping[new_labels[row]] = old_ids[col]
    next_id = max(previous_centroids, default=0) + 1
    for label in order:
        if label not in mapping:
            mapping[label] = next_id
            next_id += 1
    return mapping
