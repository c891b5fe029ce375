"""The fitted segmentation: everything needed to place customers into segments without refitting."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from .candidates import BATCH_ROWS, centroid_distances, embed, row_blocks, sample_rows
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
        """Segments for customers, with the transforms fitted at fit time (never refitted here); in blocks of
        BATCH_ROWS customers, so that memory follows the block, not the customer count."""
        scaled = self.preprocessor.transform(feature_matrix(features, self.config.features))
        if len(scaled) <= BATCH_ROWS:
            return self._assign(scaled)
        parts = [self._assign(scaled[block]) for block in row_blocks(len(scaled))]
        return Assignment(*(np.concatenate([getattr(part, name) for part in parts])
                            for name in ("segment_id", "confidence", "distance", "map_xy")))

    def _assign(self, scaled: np.ndarray) -> Assignment:
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


def sampled_tsne(scaled: np.ndarray, revenue: np.ndarray, seed: int, max_points: int,
                 neighbours: int = 5) -> np.ndarray:
    """A t-SNE map of customers (a picture: t-SNE cannot place new points). Up to `max_points` customers, t-SNE of
    all of them, as always; above, t-SNE of a sample stratified by spend (`sample_rows`), and every other customer
    at the mean position of its `neighbours` nearest sampled customers in the scaled space, placed in blocks."""
    from sklearn.manifold import TSNE
    from sklearn.neighbors import NearestNeighbors

    rows = sample_rows(revenue, max_points, seed)
    if rows is None:
        return TSNE(n_components=2, init="pca", random_state=seed).fit_transform(scaled)
    sample_xy = TSNE(n_components=2, init="pca", random_state=seed).fit_transform(scaled[rows])
    xy = np.empty((len(scaled), 2))
    xy[rows] = sample_xy
    rest = np.setdiff1d(np.arange(len(scaled)), rows, assume_unique=True)
    index = NearestNeighbors(n_neighbors=neighbours).fit(scaled[rows])
    for rows_of_block in row_blocks(len(rest)):
        block = rest[rows_of_block]
        _, nearest = index.kneighbors(scaled[block])
        xy[block] = sample_xy[nearest].mean(axis=1)
    return xy


def log_profile(features: pd.DataFrame, config: ClusterConfig) -> np.ndarray:
    return profile_space(feature_matrix(features, config.features))
