"""The candidate grid: embeddings x clustering algorithms x k, each scored the same honest way.

Scores are measured in the scaled feature space, whatever space a candidate clusters in: an embedding that
squeezes customers into tight 2-D blobs (UMAP, t-SNE) flatters a silhouette measured there.

Memory: Ward's linkage, DBSCAN and HDBSCAN grow with the square of the customers they see. Above
`ClusterConfig.fit_sample` customers, every candidate is fitted, scored and resampled on one sample stratified by
spend (the same for all, so they compare like with like), and everyone else is labelled in blocks of
`BATCH_ROWS` by the fitted segments: the estimator's predict (k-means, Gaussian mixture) or the nearest centroid
of the sample's segments. Peak memory is then bounded by the sample and the block, not by the customer count.
At or below `fit_sample` the sample is every customer and nothing changes.
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
# customers placed at once when labelling, embedding or measuring distances: a block's temporaries (customers x
# segments x features floats) stay in tens of MB whatever the customer count; above the default fit sample, so
# that customers fitted whole are embedded and placed in one block, as before
BATCH_ROWS = 65_536
# equal-size strata by rank of log revenue: 2% of customers each, so the top 2% (about the top spenders' share
# on the real file) is a stratum of its own and keeps its exact share of the sample
SAMPLE_STRATA = 50


# -- the fit sample ----------------------------------------------------------------------------------------

def sample_rows(revenue: np.ndarray, size: int, seed: int) -> np.ndarray | None:
    """Sorted row numbers of a sample of `size` customers stratified by spend, or None when there are no more
    customers than that (everyone is fitted). Each stratum (an equal share of customers ranked by log revenue)
    gives its share of the sample, remainders going to the largest fractions; deterministic given the seed."""
    n_rows = len(revenue)
    if n_rows <= size:
        return None
    order = np.argsort(np.log1p(np.clip(revenue, 0, None)), kind="stable")
    strata = np.array_split(order, min(SAMPLE_STRATA, size))
    exact = np.array([len(stratum) for stratum in strata]) * size / n_rows
    quotas = np.floor(exact).astype(int)
    short = size - int(quotas.sum())
    quotas[np.argsort(-(exact - quotas), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(stratum, size=quota, replace=False) for stratum, quota in zip(strata, quotas, strict=True)]
    return np.sort(np.concatenate(chosen))


def row_blocks(n_rows: int) -> Iterator[slice]:
    """Consecutive slices of at most BATCH_ROWS rows: what bounds memory by the block, not the row count."""
    for start in range(0, n_rows, BATCH_ROWS):
        yield slice(start, min(start + BATCH_ROWS, n_rows))


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
    """The embedding's transform, in blocks of BATCH_ROWS customers (one block up to that many)."""
    if embedding is None:
        return scaled
    if len(scaled) <= BATCH_ROWS:
        return embedding.transform(scaled)
    return np.concatenate([embedding.transform(scaled[block]) for block in row_blocks(len(scaled))])


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


def centroid_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Euclidean distance from every point (rows) to every centroid (columns), in blocks of BATCH_ROWS points."""
    distances = np.empty((len(points), len(centroids)))
    for block in row_blocks(len(points)):
        distances[block] = np.linalg.norm(points[block, None, :] - centroids[None, :, :], axis=2)
    return distances


def place(fitted: Fitted, fit_points: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Labels for customers the fit did not see: the estimator's predict where it has one, otherwise the nearest
    centroid (in the space the candidate clusters in) of the segments found on `fit_points`; -1 when the fit
    found no segment at all."""
    if not len(points):
        return np.empty(0, dtype=fitted.labels.dtype)
    if fitted.model is not None and hasattr(fitted.model, "predict"):
        return np.concatenate([fitted.model.predict(points[block]) for block in row_blocks(len(points))])
    found = np.unique(fitted.labels[fitted.labels >= 0])
    if not len(found):
        return np.full(len(points), -1, dtype=fitted.labels.dtype)
    centroids = np.array([fit_points[fitted.labels == label].mean(axis=0) for label in found])
    return found[centroid_distances(points, centroids).argmin(axis=1)]


def label_everyone(fitted: Fitted, fit_points: np.ndarray, rows: np.ndarray, rest: np.ndarray,
                   rest_points: np.ndarray) -> Fitted:
    """The fit on the sample (`rows`) extended to every customer: the sample keeps its labels (noise included),
    the `rest` are placed by `place`."""
    labels = np.empty(len(rows) + len(rest), dtype=fitted.labels.dtype)
    labels[rows] = fitted.labels
    labels[rest] = place(fitted, fit_points, rest_points)
    return Fitted(labels, fitted.model)


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
    # customers in the data and customers the candidate was fitted and scored on (fewer when above fit_sample)
    n_customers: int = 0
    sample_size: int = 0
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
    """Every candidate, scored, with its labels for every customer (fitted on the fit sample when there are more
    customers than `config.fit_sample`, see the module's doc) and its embedding."""
    fit_rows = sample_rows(revenue, config.fit_sample, config.seed)
    if fit_rows is None:
        sample, sample_revenue, rest = scaled, revenue, None
    else:
        sample, sample_revenue = scaled[fit_rows], revenue[fit_rows]
        rest = np.setdiff1d(np.arange(len(scaled)), fit_rows, assume_unique=True)
        log.info("fitting the candidates on a sample of %s of %s customers, stratified by spend; the others are "
                 "placed by the fitted segments", f"{len(fit_rows):,}", f"{len(scaled):,}")
    log_revenue = np.log1p(np.clip(sample_revenue, 0, None))
    min_size = max(2, int(config.min_segment_share * len(sample)))
    resamples = resample_rows(len(sample), config)
    for embedding_name in config.embeddings:
        started = time.perf_counter()
        embedding = fit_embedding(embedding_name, sample, log_revenue, config.seed)
        points = embed(embedding, sample)
        rest_points = None if rest is None else embed(embedding, scaled[rest])
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
                candidate = Candidate(embedding_name, algorithm, k, n_customers=len(scaled), sample_size=len(sample))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence chatter on degenerate k
                    fitted = cluster(algorithm, k, points, config.seed, min_size, tree)
                    score(candidate, fitted.labels, sample, sample_revenue, config)
                    in_range = config.segments_min <= candidate.n_clusters <= config.segments_max
                    if in_range and candidate.smallest_share >= config.min_segment_share:
                        candidate.stability = stability(algorithm, k, points, fitted.labels, config, min_size,
                                                        resamples, trees)
                    if rest is not None:
                        fitted = label_everyone(fitted, points, fit_rows, rest, rest_points)
                candidate.fit_seconds = round(time.perf_counter() - started + embed_seconds / max(1, len(ks)), 3)
                yield candidate, fitted, embedding
