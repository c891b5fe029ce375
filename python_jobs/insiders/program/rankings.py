"""Candidate definitions of the Insiders as rankings of customers: higher score, earlier in the program.

Every ranking breaks ties the same way, by gross revenue then customer id, so a group of size N is well defined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

# what the trained model sees: money on a log scale, counts and days as they are
TRAINING_FEATURES = (
    "gross_revenue", "net_revenue", "gross_revenue_90d", "gross_revenue_365d", "decayed_revenue", "returned_value",
    "n_purchase_days", "n_purchase_days_90d", "recency_days", "tenure_days",
)
MONEY = {"gross_revenue", "net_revenue", "gross_revenue_90d", "gross_revenue_365d", "decayed_revenue",
         "returned_value"}


def quintile_score(values: pd.Series) -> np.ndarray:
    """1 to 5 by quintile of the rank (ties share their average rank)."""
    return np.clip(np.ceil(5 * values.rank(method="average", pct=True).to_numpy()), 1, 5).astype(int)


def rfm_score(features: pd.DataFrame) -> np.ndarray:
    """Recency (more recent scores higher), purchase-day frequency and gross-revenue quintile scores, summed."""
    return (quintile_score(-features["recency_days"].astype(float))
            + quintile_score(features["n_purchase_days"].astype(float))
            + quintile_score(features["gross_revenue"].astype(float)))


def segment_score(segment_id: np.ndarray, gross_revenue: np.ndarray) -> np.ndarray:
    """The segment with the highest revenue per customer first, then the next one, and so on."""
    frame = pd.DataFrame({"segment_id": segment_id, "revenue": gross_revenue})
    per_customer = frame.groupby("segment_id")["revenue"].mean().rank(method="first")
    return frame["segment_id"].map(per_customer).to_numpy(dtype=float)


def training_matrix(features: pd.DataFrame) -> np.ndarray:
    columns = []
    for name in TRAINING_FEATURES:
        values = features[name].astype(float).fillna(0.0).to_numpy()
        columns.append(np.log1p(np.clip(values, 0, None)) if name in MONEY else values)
    return np.column_stack(columns)


def train_revenue_model(features_before: pd.DataFrame, revenue_after: pd.Series, seed: int):
    """A Poisson-loss gradient-boosted regressor of a customer's next-window revenue, trained on an earlier window
    (features at c - h, revenue in (c - h, c]) so that it can rank customers at c without looking past c."""
    target = features_before["customer_id"].map(revenue_after).fillna(0.0).clip(lower=0).to_numpy(dtype=float)
    model = HistGradientBoostingRegressor(loss="poisson", max_iter=200, learning_rate=0.05, random_state=seed)
    return model.fit(training_matrix(features_before), target)


def program_order(score: np.ndarray, gross_revenue: np.ndarray, customer_id: np.ndarray) -> np.ndarray:
    """Positions of the customers from first to last in the program's ranking."""
    return np.lexsort((customer_id, -gross_revenue, -score))


def top_n(score: np.ndarray, gross_revenue: np.ndarray, customer_id: np.ndarray, n: int) -> np.ndarray:
    """A boolean mask of the first `n` customers of the ranking."""
    mask = np.zeros(len(score), dtype=bool)
    mask[program_order(score, gross_revenue, customer_id)[:n]] = True
    return mask


def ranks(score: np.ndarray, gross_revenue: np.ndarray, customer_id: np.ndarray) -> np.ndarray:
    """1 for the customer the ranking puts first."""
    positions = np.empty(len(score), dtype=int)
    positions[program_order(score, gross_revenue, customer_id)] = np.arange(1, len(score) + 1)
    return positions
