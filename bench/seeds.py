"""The seeds' approach, end to end in pandas, as the notebooks did it: the reference the benchmarks compare with.

Read the invoice file, clean it by the seeds' rules, compute the customer features, then segment: MinMax-scaled
features, a random forest predicting revenue, its leaves projected with UMAP to 2-D, a Gaussian mixture with 8
components (the notebooks' final choice), silhouette in that 2-D space.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

SEED_FEATURES = ["gross_revenue", "recency_days", "n_invoices", "n_items", "n_distinct_products", "avg_ticket",
                 "avg_days_between_purchases", "purchase_frequency", "n_returned_items", "avg_basket_size",
                 "avg_unique_basket_size"]
PROJECT_DIR = Path(__file__).resolve().parents[1]


def _excluded(name: str, column: str) -> set[str]:
    return set(pd.read_csv(PROJECT_DIR / "seeds" / name, dtype=str)[column])


def seeds_features(path: Path) -> pd.DataFrame:
    """The seeds' cleaning and features: one row per customer."""
    lines = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    lines.columns = [c.lower().replace(" ", "") for c in lines.columns]
    lines = lines.rename(columns={"invoiceno": "invoice", "customerid": "customer_id", "invoicedate": "invoice_date",
                                  "unitprice": "unit_price", "stockcode": "stock_code"})
    lines["invoice_date"] = pd.to_datetime(lines["invoice_date"], format="%m/%d/%Y %H:%M")
    lines["quantity"] = pd.to_numeric(lines["quantity"])
    lines["unit_price"] = pd.to_numeric(lines["unit_price"])
    lines["customer_id"] = pd.to_numeric(lines["customer_id"])
    lines = lines.dropna(subset=["customer_id"])
    lines = lines[~lines["country"].isin(_excluded("excluded_countries.csv", "country"))
                  & ~lines["stock_code"].isin(_excluded("excluded_stock_codes.csv", "stock_code"))
                  & (lines["unit_price"] >= 0.04) & (lines["customer_id"] != 16446)]
    lines["revenue"] = lines["quantity"] * lines["unit_price"]
    purchases = lines[lines["quantity"] > 0]
    returns = lines[lines["quantity"] < 0]
    as_of = lines["invoice_date"].max()
    per_invoice = purchases.groupby(["customer_id", "invoice"]).agg(
        revenue=("revenue", "sum"), items=("quantity", "sum"), products=("stock_code", "nunique"),
        day=("invoice_date", "min"))
    features = purchases.groupby("customer_id").agg(
        gross_revenue=("revenue", "sum"), n_items=("quantity", "sum"), n_distinct_products=("stock_code", "nunique"),
        last=("invoice_date", "max"), first=("invoice_date", "min"))
    by_customer = per_invoice.groupby("customer_id")
    features["n_invoices"] = by_customer.size()
    features["avg_ticket"] = by_customer["revenue"].mean()
    features["avg_basket_size"] = by_customer["items"].mean()
    features["avg_unique_basket_size"] = by_customer["products"].mean()
    features["avg_days_between_purchases"] = by_customer["day"].apply(
        lambda days: days.sort_values().diff().dt.days.mean()).fillna(0.0)
    features["recency_days"] = (as_of - features["last"]).dt.days
    tenure = ((as_of - features["first"]).dt.days).clip(lower=30)
    features["purchase_frequency"] = features["n_invoices"] / tenure
    features["n_returned_items"] = (-returns.groupby("customer_id")["quantity"].sum()).reindex(features.index)
    return features.fillna(0.0).reset_index()


def seeds_clustering(features: pd.DataFrame) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.metrics import silhouette_score
        from sklearn.mixture import GaussianMixture
        from sklearn.preprocessing import MinMaxScaler

        matrix = MinMaxScaler().fit_transform(features[SEED_FEATURES].astype(float).fillna(0.0))
        forest = RandomForestRegressor(n_estimators=100, random_state=42, n_jobs=-1)
        forest.fit(matrix, features["gross_revenue"].astype(float))
        leaves = forest.apply(matrix)
        embedding = umap.UMAP(random_state=42).fit_transform(leaves)
        mixture = GaussianMixture(n_components=8, n_init=10, random_state=42).fit(embedding)
        labels = mixture.predict(embedding)
        silhouette = silhouette_score(embedding, labels)
    return f"GMM k=8 on RF-leaf UMAP, silhouette in the 2-D embedding {silhouette:.3f}"


def seeds_pipeline(path: Path) -> str:
    features = seeds_features(path)
    return f"{len(features):,} customers, {float(np.sum(features['gross_revenue'])):,.2f} gross revenue; " \
           + seeds_clustering(features)


if __name__ == "__main__":
    import sys
    import time

    started = time.perf_counter()
    print(seeds_pipeline(Path(sys.argv[1])), f"in {time.perf_counter() - started:.1f} s")
