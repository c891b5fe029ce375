"""Segment profiles and names from documented rules. Segments describe the whole base; the Insiders are the
program's members (python_jobs/insiders/program), not a segment.

The segment with the highest gross revenue per customer is "Top spenders". Every other segment is named by the
first rule its profile meets, comparing its medians with the whole base:
1. "Big returners": it returns at least 15% of the items it buys, and at least 3 times the base's rate.
2. "One-off buyers": its median customer has a single invoice.
3. "Hibernating": its median recency is at least 90 days and twice the base's median.
4. "Loyal regulars": its median invoice count is at least the base's 75th percentile.
5. "New customers": its median tenure is 90 days or less.
6. otherwise "Occasional buyers".
Segments that meet the same rule are told apart by what differs most between them (in standard deviations of
the whole base): "Hibernating, higher spend" and "Hibernating, lower spend"; with three or more, "highest",
"middle" and "lowest" (or more, numbered from the top).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TOP_SEGMENT = "Top spenders"
# what may tell two segments of the same rule apart: (profile column, base column, word in the name)
DISTINGUISHERS = (
    ("median_gross_revenue", "gross_revenue", "spend"),
    ("median_recency_days", "recency_days", "recency"),
    ("median_invoices", "n_invoices", "frequency"),
    ("median_tenure_days", "tenure_days", "tenure"),
    ("median_avg_ticket", "avg_ticket", "ticket"),
)


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


def top_segment(profiles: pd.DataFrame) -> int:
    """The label with the highest revenue per customer."""
    return int(profiles["revenue_per_customer"].idxmax())


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


def _ordinal(n: int) -> str:
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n if n < 20 else n % 10, 'th')}"


def _qualifiers(group: pd.DataFrame, base: pd.DataFrame) -> dict[int, str]:
    """Label -> "higher spend" / "lower spend" (or highest/middle/lowest) on the feature that differs most."""
    def spread(column: str, base_column: str) -> float:
        scale = float(np.log1p(base[base_column].astype(float).clip(lower=0)).std()) or 1.0
        values = np.log1p(group[column].astype(float).clip(lower=0))
        return float(values.max() - values.min()) / scale

    column, _, word = max(DISTINGUISHERS, key=lambda d: spread(d[0], d[1]))
    ordered = group[column].astype(float).sort_values(ascending=False, kind="stable").index
    if len(ordered) == 2:
        words = ["higher", "lower"]
    elif len(ordered) == 3:
        words = ["highest", "middle", "lowest"]
    else:
        words = ["highest", *[f"{_ordinal(i)}-highest" for i in range(2, len(ordered))], "lowest"]
    return {int(label): f"{w} {word}" for label, w in zip(ordered, words, strict=True)}


def name_segments(profiles: pd.DataFrame, base: pd.DataFrame) -> dict[int, str]:
    """Label -> a distinct name; `profiles` is one row per label (profile_segments)."""
    top = top_segment(profiles)
    rule = {int(label): TOP_SEGMENT if label == top else _rule_name(row, base) for label, row in profiles.iterrows()}
    names = dict(rule)
    for name in set(rule.values()):
        labels = [label for label, n in rule.items() if n == name]
        if len(labels) > 1:
            for label, qualifier in _qualifiers(profiles.loc[labels], base).items():
                names[label] = f"{name}, {qualifier}"
    return names
