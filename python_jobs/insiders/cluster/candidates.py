"""The candidate grid: embeddings x clustering algorithms x k, each scored the same honest way.

Scores are measured in the scaled feature space, whatever space a candidate clusters in: an embedding that
squeezes customers into tight 2-D blobs (UMAP, t-SNE) flatters a silhouette measured there.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import DBSCAN, HDBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from .config import ClusterConfig

log = logging.getLogger(__name__)
K_FREE = ("dbscan", "hdbscan")  # algorithms that find their own number of clusters


# -- embeddings --------------------------------------------------------------------------------------------

def fit_embedding(name: str, scaled: np.ndarray, log_revenue: np.ndarray, seed: int):
    """An estimator with `transform` that maps scaled features into the space a candidate clusters in."""
    if name == "scaled":
        return None
    if name == "pca":
        return PCA(n_components=0.95, svd_solver="full", random_state=seed).fit(scaled)
    if name == "umap":
        return _umap(seed).fit(scaled)
    if name == "tree":
        return TreeEmbedding(seed).fit(scaled, log_revenue)
    raise ValueError(name)


def embed(embedding, scaled: np.ndarray) -> np.ndarray:
    return scaled if embedding is None else embedding.transform(scaled)


def _umap(seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

    return umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.0, random_state=seed)


class TreeEmbedding:
    """The seeds' tree-based space: random-forest leaves (trained to predict revenue) projected with UMAP."""

    def __init__(self, seed: int) -> None:
        self.forest = RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=-1)
        self.projection = _umap(seed)

    def fit(self, scaled: np.ndarray, log_revenue: np.ndarray) -> TreeEmbedding:
        self.forest.fit(scaled, log_revenue)
        self.projection.fit(self.forest.apply(scaled))
        return self

    def transform(self, scaled: np.ndarray) -> np.ndarray:
        return self.projection.transform(self.forest.apply(scaled))


# -- clustering --------------------------------------------------------------------------------------------

@dataclass
class Fitted:
    labels: np.ndarray
    model: object | None  # an estimator with predict, or None (assignment by nearest centroid)


def _dbscan_eps(points: np.ndarray, min_samples: int) -> float:
    """The 90th percentile of distances to the min_samples-th neighbour: dense cores, sparse noise."""
    distances, _ = NearestNeighbors(n_neighbors=min_samples).fit(points).kneighbors(points)
    return float(np.quantile(distances[:, -1], 0.9))


def cluster(algorithm: str, k: int | None, points: np.ndarray, seed: int, min_size: int,
            ward_tree: np.ndarray | None = None) -> Fitted:
    """Labels (-1 for noise) and, where the algorithm has one, the estimator that can place new customers."""
    if algorithm == "kmeans":
        model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(points)
        return Fitted(model.labels_, model)
    if algorithm == "gmm":
        model = GaussianMixture(n_components=k, covariance_type="full", n_init=1, reg_covar=1e-4,
                                random_state=seed).fit(points)
        return Fitted(model.predict(points), model)
    if algorithm == "ward":
        tree = ward_tree if ward_tree is not None else linkage(points, method="ward")
        return Fitted(fcluster(tree, t=k, criterion="maxclust") - 1, None)
    if algorithm == "dbscan":
        min_samples = max(5, min_size // 4)
        return Fitted(DBSCAN(eps=_dbscan_eps(points, min_samples), min_samples=min_samples).fit_predict(points), None)
    if algorithm == "hdbscan":
        return Fitted(HDBSCAN(min_cluster_size=max(5, min_size)).fit_predict(points), None)
    raise ValueError(algorithm)


# -- scoring -----------------------------------------------------------------------------------------------

@dataclass
class Candidate:
    embedding: str
    algorithm: str
    k: int | None
    n_clusters: int = 0
    noise_share: float = 0.0
    smallest_share: float = 0.0
    top_segment_share: float = 0.0  # customers in the segment with the highest revenue per customer
    silhouette: float = float("nan")
    davies_bouldin: float = float("nan")
    calinski_harabasz: float = float("nan")
    stability: float = float("nan")
    fit_seconds: float = 0.0
    eligible: bool = False
    selected: bool = False
    rejection: str = ""

    @property
    def candidate_id(self) -> str:
        return f"{self.embedding}/{self.algorithm}" + (f"/k={self.k}" if self.k is not None else "")


def score(candidate: Candidate, labels: np.ndarray, scaled: np.ndarray, revenue: np.ndarray,
          config: ClusterConfig) -> None:
    """Silhouette, Davies-Bouldin and Calinski-Harabasz in the scaled feature space, noise points left out."""
    clustered = labels >= 0
    counts = np.bincount(labels[clustered]) if clustered.any() else np.array([])
    sizes = counts[counts > 0]
    if len(sizes):
        per_customer = np.bincount(labels[clustered], weights=revenue[clustered]) / np.maximum(counts, 1)
        candidate.top_segment_share = float(counts[per_customer.argmax()] / len(labels))
    candidate.n_clusters = len(sizes)
    candidate.noise_share = float(1 - clustered.mean())
    candidate.smallest_share = float(sizes.min() / len(labels)) if len(sizes) else 0.0
    if candidate.n_clusters < 2:
        return
    points, kept = scaled[clustered], labels[clustered]
    sample = min(config.silhouette_sample, len(points))
    candidate.silhouette = float(silhouette_score(points, kept, sample_size=sample, random_state=config.seed))
    candidate.davies_bouldin = float(davies_bouldin_score(points, kept))
    candidate.calinski_harabasz = float(calinski_harabasz_score(points, kept))


def resample_rows(n_rows: int, config: ClusterConfig) -> list[np.ndarray]:
    """The same resamples for every candidate, so that their stabilities compare like with like."""
    rng = np.random.default_rng(config.seed)
    size = int(n_rows * config.resample_share)
    return [np.sort(rng.choice(n_rows, size=size, replace=False)) for _ in range(config.n_resamples)]


def stability(algorithm: str, k: int | None, points: np.ndarray, reference: np.ndarray, config: ClusterConfig,
              min_size: int, resamples: list[np.ndarray], ward_trees: list[np.ndarray] | None = None) -> float:
    """Mean adjusted Rand index between the labels on the full data and refits on each resample."""
    scores = []
    for i, rows in enumerate(resamples):
        tree = ward_trees[i] if ward_trees is not None else None
        refit = cluster(algorithm, k, points[rows], config.seed, int(min_size * config.resample_share), tree)
        scores.append(adjusted_rand_score(reference[rows], refit.labels))
    return float(np.mean(scores))


def run_grid(scaled: np.ndarray, revenue: np.ndarray,
             config: ClusterConfig) -> Iterator[tuple[Candidate, Fitted, object]]:
    """Every candidate, scored, with its fitted labels and embedding."""
    log_revenue = np.log1p(np.clip(revenue, 0, None))
    min_size = max(2, int(config.min_segment_share * len(scaled)))
    resamples = resample_rows(len(scaled), config)
    for embedding_name in config.embeddings:
        started = time.perf_counter()
        embedding = fit_embedding(embedding_name, scaled, log_revenue, config.seed)
        points = embed(embedding, scaled)
        embed_seconds = time.perf_counter() - started
        for algorithm in config.algorithms:
            ks: list[int | None] = [None] if algorithm in K_FREE else list(range(config.k_min, config.k_max + 1))
            # one Ward tree per data set serves every k: cutting it is cheap, building it is not
            tree, trees = None, None
            if algorithm == "ward":
                tree = linkage(points, method="ward")
                trees = [linkage(points[rows], method="ward") for rows in resamples]
            for k in ks:
                started = time.perf_counter()
                candidate = Candidate(embedding_name, algorithm, k)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence chatter on degenerate k
                    fitted = cluster(algorithm, k, points, config.seed, min_size, tree)
                    score(candidate, fitted.labels, scaled, revenue, config)
                    in_range = config.segments_min <= candidate.n_clusters <= config.segments_max
                    if in_range and candidate.smallest_share >= config.min_segment_share:
                        candidate.stability = stability(algorithm, k, points, fitted.labels, config, min_size,
                                                        resamples, trees)
                candidate.fit_seconds = round(time.perf_counter() - started + embed_seconds / max(1, len(ks)), 3)
                yield candidate, fitted, embedding
