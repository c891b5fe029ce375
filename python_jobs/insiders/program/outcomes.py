"""What customers did after a cutoff, read from the daily sales mart (the cleaning rules already applied)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import psycopg


def future_revenue(conn: psycopg.Connection, cutoff: date, horizon_days: int) -> pd.DataFrame:
    """Per customer with lines in (cutoff, cutoff + horizon]: net and gross revenue, purchase days."""
    rows = conn.execute(
        "select customer_id, sum(net_revenue)::float8, sum(gross_revenue)::float8,"
        " count(*) filter (where has_purchase)"
        " from fct_customer_daily_sales where invoice_date > %s and invoice_date <= %s group by customer_id",
        (cutoff, cutoff + timedelta(days=horizon_days)),
    ).fetchall()
    return pd.DataFrame(rows, columns=["customer_id", "net_revenue", "gross_revenue", "purchase_days"]).set_index(
        "customer_id")


def aligned(outcome: pd.DataFrame, customer_id: pd.Series, column: str) -> pd.Series:
    """`column` of the outcome for each customer of `customer_id`, 0 for those with no line in the horizon."""
    return customer_id.map(outcome[column]).fillna(0.0).astype(float)
