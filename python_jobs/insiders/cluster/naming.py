"""Segment profiles, the one Insiders segment, and names from documented rules.

The Insiders: among segments holding between `insider_min_share` and `insider_max_share` of customers, the one
with the highest gross revenue per customer (if none has a sensible size, the highest revenue per customer).

Every other segment is named by the first rule its profile meets, comparing its medians with the whole base:
1. "Big returners": it returns at least 15% of the items it buys, and at least 3 times the base's rate.
2. "One-off buyers": its median customer has a single invoice.
3. "Hibernating": its median recency is at least 90 days and twice the base's median.
4. "Loyal regulars": its median invoice count is at least the base's 75th percentile.
5. "New customers": its median tenure is 90 days or less.
6. otherwise "Occasional buyers".
Two segments meeting the same rule are told apart by a number, in order of revenue per customer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import ClusterConfig

INSIDERS = "Insiders"


def profile_segments(features: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """One row per label: size, revenue and the medians the naming rules read."""
    frame = features.assign(label=labels)
    numeric = ["gross_revenue", "net_revenue", "n_invoices", "recency_days", "tenure_days", "avg_ticket",
               "return_rate", "n_items", "n_returned_items"]
    frame[numeric] = frame[numeric].astype(float)
    grouped = frame.groupby("label")
    profiles = pd.DataFrame({
        "n_customers": grouped.size(),
        "gross_revenue": grouped["gross_revenue"].sum(),
        "revenue_per_customer": grouped["gross_revenue"].mean(),
        "median_gross_revenue": grouped["gross_revenue"].median(),
        "median_invoices": grouped["n_invoices"].median(),
        "median_recency_days": grouped["recency_days"].median(),
        "median_tenure_days": grouped["tenure_days"].median(),
        "median_avg_ticket": grouped["avg_ticket"].median(),
        "items_return_rate": grouped["n_returned_items"].sum() / grouped["n_items"].sum().replace(0, np.nan),
    })
    profiles["customer_share"] = profiles["n_customers"] / profiles["n_customers"].sum()
    profiles["revenue_share"] = profiles["gross_revenue"] / profiles["gross_revenue"].sum()
    return profiles.sort_values("revenue_per_customer", ascending=False)


def choose_insiders(profiles: pd.DataFrame, config: ClusterConfig) -> int:
    sensible = profiles[profiles["customer_share"].between(config.insider_min_share, config.insider_max_share)]
    pool = sensible if not sensible.empty else profiles
    return int(pool["revenue_per_customer"].idxmax())


def _rule_name(row: pd.Series, base: pd.DataFrame) -> str:
    bought = max(1.0, float(base["n_items"].astype(float).sum()))
    base_return_rate = float(base["n_returned_items"].astype(float).sum()) / bought
    base_recency = float(base["recency_days"].astype(float).median())
    if row["items_return_rate"] >= max(0.15, 3 * base_return_rate):
        return "Big returners"
    if row["median_invoices"] <= 1:
        return "One-off buyers"
    if row["median_recency_days"] >= max(90.0, 2 * base_recency):
        return "Hibernating"
    if row["median_invoices"] >= float(base["n_invoices"].astype(float).quantile(0.75)):
        return "Loyal regulars"
    if row["median_tenure_days"] <= 90:
        return "New customers"
    return "Occasional buyers"


def name_segments(profiles: pd.DataFrame, insider_label: int, base: pd.DataFrame) -> dict[int, str]:
    """Label -> name; `profiles` is ordered by revenue per customer, which orders duplicate names too."""
    names: dict[int, str] = {}
    used: dict[str, int] = {}
    for label, row in profiles.iterrows():
        name = INSIDERS if label == insider_label else _rule_name(row, base)
        used[name] = used.get(name, 0) + 1
        names[int(label)] = name if used[name] == 1 else f"{name} {used[name]}"
    return names
