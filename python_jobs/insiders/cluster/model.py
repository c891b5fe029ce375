"""The fitted segmentation: everything needed to place customers into segments without refitting."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from .candidates import embed
from .config import ClusterConfig
from .features import feature_matrix, profile_space


@dataclass
class SegmentDefinition:
    segment_id: int
    name: str
    is_top_segment: bool  # the highest revenue per customer at fit time
    n_customers_at_fit: int
    profile: dict[str, float]  # log-space centroid and headline figures, for matching and for people
    centroid: list[float]  # in the embedded space, for assignment


@dataclass
class Assignment:
    segment_id: np.ndarray
    confidence: np.ndarray
    distance: np.ndarray
    map_xy: np.ndarray


@dataclass
class SegmentModel:
    config: ClusterConfig
    candidate_id: str
    preprocessor: Pipeline
    embedding: object | None
    mixture: object | None  # a GaussianMixture assigns by posterior; every other model by nearest centroid
    label_to_segment: dict[int, int]
    segments: list[SegmentDefinition]
    map_projection: PCA
    fitted_as_of: date
    library_versions: dict[str, str] = field(default_factory=dict)

    def segment(self, segment_id: int) -> SegmentDefinition:
        return next(s for s in self.segments if s.segment_id == segment_id)

    def assign(self, features: pd.DataFrame) -> Assignment:
        """Segments for customers, with the transforms fitted at fit time (never refitted here)."""
        scaled = self.preprocessor.transform(feature_matrix(features, self.config.features))
        points = embed(self.embedding, scaled)
        by_position = sorted(self.segments, key=lambda s: s.segment_id)
        centroids = np.array([s.centroid for s in by_position])
        distances = centroid_distances(points, centroids)
        if self.mixture is not None:
            # only components that became segments at fit time may take customers
            components = sorted(self.label_to_segment)
            posterior = self.mixture.predict_proba(points)[:, components]
            posterior = posterior / np.maximum(posterior.sum(axis=1, keepdims=True), 1e-300)
            segment_ids = np.array([self.label_to_segment[components[i]] for i in posterior.argmax(axis=1)])
            confidence = posterior.max(axis=1)
        else:
            nearest = distances.argmin(axis=1)
            segment_ids = np.array([by_position[i].segment_id for i in nearest])
            ordered = np.sort(distances, axis=1)
            # 1 at the centroid, 0 on the boundary with the next segment
            confidence = 1 - ordered[:, 0] / np.maximum(ordered[:, 1], 1e-12) if len(by_position) > 1 \
                else np.ones(len(points))
        position = {s.segment_id: i for i, s in enumerate(by_position)}
        own = distances[np.arange(len(points)), [position[s] for s in segment_ids]]
        return Assignment(segment_ids, confidence, own, self.map_projection.transform(scaled))


def centroid_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Euclidean distance from every point (rows) to every centroid (columns)."""
    return np.linalg.norm(points[:, None, :] - centroids[None, :, :], axis=2)


def log_profile(features: pd.DataFrame, config: ClusterConfig) -> np.ndarray:
    return profile_space(feature_matrix(features, config.features))
