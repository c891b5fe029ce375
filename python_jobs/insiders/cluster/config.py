"""The clustering job's configuration: one typed object, documented defaults, loaded once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Behaviour the segments are built on, over the trailing 365 days so that a segment means the same thing in March
# and in December (lifetime totals grow with the age of the data, and customers would drift between segments just
# by accumulating history): spend, invoices, purchase days, the span from first to last purchase (repeat against
# one-off buyers), days since the last purchase and the share of units returned; and purchase days over the last
# 90 days, which tell customers still buying from those slowing down. Ratios of these (average
# ticket = revenue / invoices) are left out: after the log they are differences of columns already there, and
# would count twice. Money and counts are heavy-tailed, so every feature goes through log1p before scaling.
DEFAULT_FEATURES = (
    "gross_revenue_365d",
    "n_invoices_365d",
    "n_purchase_days_365d",
    "purchase_span_365d",
    "n_purchase_days_90d",
    "recency_days",
    "return_rate_365d",
)
# Raw mart columns the Insider rules may use: what a marketing team can read and act on.
RULE_FEATURES = (
    "gross_revenue",
    "gross_revenue_365d",
    "gross_revenue_90d",
    "decayed_revenue",
    "net_revenue",
    "n_invoices",
    "n_purchase_days",
    "recency_days",
    "tenure_days",
    "avg_ticket",
    "return_rate",
    "n_distinct_products",
)
ALGORITHMS = ("kmeans", "gmm", "ward", "dbscan", "hdbscan")
EMBEDDINGS = ("scaled", "pca", "umap", "tree")
# the 2-D customer map: PCA is fitted with the model and places new customers; t-SNE cannot place new points, so it
# is offered for the picture only, re-embedding each run's customers and never assigning segments
MAP_EMBEDDINGS = ("pca", "tsne")


@dataclass(frozen=True)
class ClusterConfig:
    features: tuple[str, ...] = DEFAULT_FEATURES
    rule_features: tuple[str, ...] = RULE_FEATURES
    # the candidate grid: every embedding x algorithm x k in [k_min, k_max]
    # the default grid is the fast one; gmm, dbscan, hdbscan and the pca, umap and tree embeddings are offered
    embeddings: tuple[str, ...] = ("scaled",)
    algorithms: tuple[str, ...] = ("kmeans", "ward")
    k_min: int = 2
    k_max: int = 12
    # selection: segments a marketing team can act on, none too small to matter, stable under resampling
    segments_min: int = 4
    segments_max: int = 8
    # 1%: on the real file the top spenders are about 2% of customers, and they are the point of the exercise
    min_segment_share: float = 0.01
    min_stability: float = 0.75
    n_resamples: int = 4
    resample_share: float = 0.8
    silhouette_sample: int = 3000
    # the most customers any candidate is fitted and scored on: above it the grid fits a sample stratified by
    # spend and labels everyone else by the fitted segments (nearest centroid, or the estimator's predict).
    # Ward's linkage holds two condensed distance matrices, 8 n^2 bytes (0.8 GB at 10,000: the largest step; the
    # product allows 2 GB per process), and DBSCAN, HDBSCAN, t-SNE and silhouette grow as fast or faster. The
    # real file (about 4,400 customers) and the 500,000-line demo (about 4,900) are fitted whole.
    fit_sample: int = 10_000
    # segment identities carry over on refit when profiles lie within this distance (in pooled std units)
    match_max_distance: float = 1.0
    # refit policy: score with the latest model fitted on data up to the as-of date, and fit a new one when that
    # model's data cutoff is this many months old or more (or when none exists)
    refit_every_months: int = 3
    rule_tree_depth: int = 3
    map_embedding: str = "pca"
    seed: int = 42

    def __post_init__(self) -> None:
        unknown = [a for a in self.algorithms if a not in ALGORITHMS] + [e for e in self.embeddings
                                                                         if e not in EMBEDDINGS]
        if self.map_embedding not in MAP_EMBEDDINGS:
            unknown.append(self.map_embedding)
        if unknown:
            raise ValueError(f"unknown algorithm or embedding: {', '.join(unknown)}")
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError("k_min must be at least 2 and at most k_max")
        if self.fit_sample < 100:
            raise ValueError("fit_sample must be at least 100")
        if self.refit_every_months < 1:
            raise ValueError("refit_every_months must be at least 1")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
