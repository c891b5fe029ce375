"""What customers did after a cutoff (Warehouse.future_revenue: the daily sales mart, cleaning rules applied),
set against the customers of a date."""

from __future__ import annotations

import pandas as pd


def aligned(outcome: pd.DataFrame, customer_id: pd.Series, column: str) -> pd.Series:
    """`column` of the outcome for each customer of `customer_id`, 0 for those with no line in the horizon."""
    return customer_id.map(outcome[column]).fillna(0.0).astype(float)
