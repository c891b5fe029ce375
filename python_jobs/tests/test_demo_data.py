from __future__ import annotations

import hashlib

import pandas as pd

from insiders.demo_data import PERSONAS, generate, truth_path_for


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    generate(tmp_path / "a.csv", n_lines=20_000, seed=7)
    generate(tmp_path / "b.csv", n_lines=20_000, seed=7)
    generate(tmp_path / "c.csv", n_lines=20_000, seed=8)
    assert digest(tmp_path / "a.csv") == digest(tmp_path / "b.csv")
    assert digest(truth_path_for(tmp_path / "a.csv")) == digest(truth_path_for(tmp_path / "b.csv"))
    assert digest(tmp_path / "a.csv") != digest(tmp_path / "c.csv")


def test_exact_line_count_and_the_real_files_quirks(tmp_path):
    out = tmp_path / "demo.csv"
    written, _customers = generate(out, n_lines=60_000, seed=1)
    lines = pd.read_csv(out, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": "Int64"})
    assert written == len(lines) == 60_000
    assert list(lines.columns) == ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
                                   "CustomerID", "Country"]
    cancellations = lines["InvoiceNo"].str.startswith("C")
    assert cancellations.sum() > 0 and (lines.loc[cancellations, "Quantity"] < 0).all()
    assert 0.1 < lines["CustomerID"].isna().mean() < 0.35  # guest lines
    assert {"POST", "M", "D", "DOT"} <= set(lines["StockCode"])
    assert (lines["UnitPrice"] == 0).sum() > 0 and (lines["UnitPrice"].between(0, 0.04, inclusive="neither")).any()
    assert lines["Quantity"].max() >= 1_000  # rare bulk orders
    assert (lines["Country"] == "United Kingdom").mean() > 0.8
    months = pd.to_datetime(lines["InvoiceDate"], format="%m/%d/%Y %H:%M").dt.month
    assert (months == 11).sum() > 1.5 * (months == 2).sum()  # the November peak
    spend = (lines["Quantity"] * lines["UnitPrice"]).groupby(lines["CustomerID"]).sum()
    assert spend.quantile(0.99) > 10 * spend.median()  # heavy-tailed spend


def test_personas_live_in_their_own_file(tmp_path):
    out = tmp_path / "demo.csv"
    _, customers = generate(out, n_lines=30_000, seed=3)
    truth = pd.read_csv(truth_path_for(out))
    lines = pd.read_csv(out, dtype={"CustomerID": "Int64"})
    assert "persona" not in lines.columns
    assert len(truth) == customers == lines["CustomerID"].nunique()
    assert set(truth["persona"]) == {p.name for p in PERSONAS}


def test_parquet_output_holds_the_same_lines(tmp_path):
    generate(tmp_path / "d.csv", n_lines=5_000, seed=2)
    generate(tmp_path / "d.parquet", n_lines=5_000, seed=2)
    from_csv = pd.read_csv(tmp_path / "d.csv", dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": "Int64"})
    from_parquet = pd.read_parquet(tmp_path / "d.parquet")
    for frame in (from_csv, from_parquet):  # a missing description reads back as NaN from CSV, None from Parquet
        frame["Description"] = frame["Description"].astype(object).where(frame["Description"].notna(), None)
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=False)
