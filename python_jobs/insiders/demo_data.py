"""`insiders demo-data`: deterministic synthetic invoice lines in the UCI layout, with the real file's quirks.

Customers come from planted personas; the persona of each customer goes to a separate truth file, never into the
invoice data, so tests can check whether the segmentation recovers them. Lines are generated and written in
blocks of customers, so ten million lines need no more memory than a few hundred thousand.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .files import replaced_atomically

log = logging.getLogger(__name__)

PERIOD_START = pd.Timestamp("2010-12-01")
PERIOD_END = pd.Timestamp("2011-12-09 20:00")
FIRST_INVOICE_NO = 536365
FIRST_CUSTOMER_ID = 12346
N_PRODUCTS = 3_000
GUEST_LINE_SHARE = 0.22
CUSTOMERS_PER_BLOCK = 1_500
HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]

COUNTRIES = np.array([
    "United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium", "Switzerland", "Portugal",
    "Australia", "Norway", "Italy", "Channel Islands", "Finland", "Cyprus", "Sweden", "Unspecified",
    "European Community",
])
COUNTRY_WEIGHTS = np.array([
    0.885, 0.022, 0.02, 0.017, 0.007, 0.006, 0.005, 0.004, 0.004, 0.003, 0.003, 0.003, 0.002, 0.002, 0.002,
    0.002, 0.002, 0.001,
])
# the real file's non-product codes: postage, manual adjustments, discounts, fees
NON_PRODUCT_CODES = {
    "POST": ("POSTAGE", 18.0), "M": ("Manual", 2.5), "D": ("Discount", 15.0), "BANK CHARGES": ("Bank Charges", 15.0),
    "AMAZONFEE": ("AMAZON FEE", 120.0), "DOT": ("DOTCOM POSTAGE", 45.0), "CRUK": ("CRUK Commission", 12.0),
}
# seasonality by month of the year (a November peak, a busy autumn)
MONTH_WEIGHT = {12: 1.1, 1: 0.75, 2: 0.7, 3: 0.9, 4: 0.75, 5: 0.95, 6: 0.9, 7: 0.9, 8: 0.9, 9: 1.3, 10: 1.45,
                11: 1.9}
WORDS = np.array([
    "WHITE", "RED", "HEART", "VINTAGE", "JUMBO", "BAG", "LANTERN", "CANDLE", "HOLDER", "SET", "OF", "MUG", "BOX",
    "CHRISTMAS", "PAPER", "CHAIN", "RETROSPOT", "GLASS", "STAR", "TEA", "CAKE", "CASES", "PINK", "BLUE", "WOODEN",
    "FRAME", "SIGN", "BUNTING", "LUNCH", "DOLLY", "GARDEN", "BIRD", "ORNAMENT", "HANGING", "METAL", "TIN",
])


@dataclass(frozen=True)
class Persona:
    name: str
    share: float  # of identified customers
    invoices: tuple[int, int]  # inclusive range of purchase invoices over the year
    lines_per_invoice: tuple[float, float]  # lognormal median, sigma
    quantity: tuple[float, float]  # lognormal median, sigma of units per line
    active_days: tuple[int, int]  # purchases fall between these day offsets from PERIOD_START
    return_share: float  # expected share of purchased lines that come back
    spend_scale: tuple[float, float]  # lognormal median, sigma of a per-customer multiplier on quantities


PERIOD_DAYS = int((PERIOD_END - PERIOD_START).days)
PERSONAS = (
    Persona("big_regular", 0.05, (18, 45), (28.0, 0.4), (12.0, 0.6), (0, PERIOD_DAYS), 0.02, (1.6, 0.35)),
    Persona("occasional", 0.33, (2, 5), (9.0, 0.4), (3.0, 0.5), (PERIOD_DAYS - 240, PERIOD_DAYS), 0.0, (1.0, 0.25)),
    Persona("one_off", 0.30, (1, 1), (12.0, 0.5), (4.0, 0.6), (0, PERIOD_DAYS), 0.0, (1.0, 0.25)),
    Persona("heavy_returner", 0.09, (4, 10), (14.0, 0.4), (6.0, 0.5), (0, PERIOD_DAYS), 0.45, (1.1, 0.25)),
    Persona("lapsed", 0.23, (3, 6), (7.0, 0.4), (3.0, 0.5), (0, 120), 0.0, (0.9, 0.25)),
)


@dataclass
class Catalog:
    codes: np.ndarray
    descriptions: np.ndarray
    prices: np.ndarray
    popularity: np.ndarray


def make_catalog(rng: np.random.Generator) -> Catalog:
    codes = np.array([str(10000 + i * 7) + ("" if i % 5 else "A") for i in range(N_PRODUCTS)])
    words = rng.integers(0, len(WORDS), size=(N_PRODUCTS, 3))
    descriptions = np.array([" ".join(WORDS[w]) for w in words])
    prices = np.round(np.exp(rng.normal(np.log(2.4), 0.75, N_PRODUCTS)), 2).clip(0.06, 60.0)
    popularity = rng.pareto(1.2, N_PRODUCTS) + 0.05
    return Catalog(codes, descriptions, prices, popularity / popularity.sum())


def _day_weights() -> np.ndarray:
    days = pd.date_range(PERIOD_START, PERIOD_END.normalize(), freq="D")
    weights = np.array([MONTH_WEIGHT[d.month] * (0.15 if d.dayofweek == 5 else 1.0) for d in days])
    return weights


def _sample_days(rng: np.random.Generator, weights: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """One day offset per row, seasonally weighted, within each row's [low, high] window."""
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    u = rng.random(len(low))
    target = cumulative[low] + u * (cumulative[high + 1] - cumulative[low])
    return np.clip(np.searchsorted(cumulative, target, side="right") - 1, low, high)


def _format_dates(stamps: pd.DatetimeIndex) -> np.ndarray:
    """`12/1/2010 8:26`, the real file's text format (no zero padding)."""
    return (
        stamps.month.astype(str) + "/" + stamps.day.astype(str) + "/" + stamps.year.astype(str) + " "
        + stamps.hour.astype(str) + ":" + pd.Index(stamps.minute).map("{:02d}".format)
    ).to_numpy()


@dataclass
class BlockState:
    next_invoice: int
    next_customer: int


def _generate_block(rng: np.random.Generator, catalog: Catalog, day_weights: np.ndarray, state: BlockState,
                    n_customers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Invoice lines of `n_customers` identified customers, and their personas."""
    shares = np.array([p.share for p in PERSONAS])
    persona_idx = rng.choice(len(PERSONAS), size=n_customers, p=shares / shares.sum())
    customer_ids = np.arange(state.next_customer, state.next_customer + n_customers)
    state.next_customer += n_customers
    countries = rng.choice(COUNTRIES, size=n_customers, p=COUNTRY_WEIGHTS / COUNTRY_WEIGHTS.sum())
    spend = np.array([rng.lognormal(np.log(PERSONAS[i].spend_scale[0]), PERSONAS[i].spend_scale[1])
                      for i in persona_idx])

    lo = np.array([PERSONAS[i].invoices[0] for i in persona_idx])
    hi = np.array([PERSONAS[i].invoices[1] for i in persona_idx])
    n_invoices = rng.integers(lo, hi + 1)

    # invoices
    inv_customer = np.repeat(np.arange(n_customers), n_invoices)
    inv_persona = persona_idx[inv_customer]
    win_lo = np.array([PERSONAS[i].active_days[0] for i in inv_persona])
    win_hi = np.array([PERSONAS[i].active_days[1] for i in inv_persona])
    inv_day = _sample_days(rng, day_weights, win_lo, np.minimum(win_hi, len(day_weights) - 1))
    minutes = rng.integers(7 * 60 + 30, 19 * 60 + 30, size=len(inv_day))
    inv_time = PERIOD_START + pd.to_timedelta(inv_day, unit="D") + pd.to_timedelta(minutes, unit="m")
    lpi_med = np.array([PERSONAS[i].lines_per_invoice[0] for i in inv_persona])
    lpi_sig = np.array([PERSONAS[i].lines_per_invoice[1] for i in inv_persona])
    inv_lines = np.maximum(1, np.round(rng.lognormal(np.log(lpi_med), lpi_sig))).astype(int)
    inv_no = np.arange(state.next_invoice, state.next_invoice + len(inv_day))
    state.next_invoice += len(inv_day)

    # purchase lines
    line_inv = np.repeat(np.arange(len(inv_day)), inv_lines)
    line_cust = inv_customer[line_inv]
    line_persona = persona_idx[line_cust]
    product = rng.choice(N_PRODUCTS, size=len(line_inv), p=catalog.popularity)
    q_med = np.array([p.quantity[0] for p in PERSONAS])[line_persona] * spend[line_cust]
    q_sig = np.array([p.quantity[1] for p in PERSONAS])[line_persona]
    quantity = np.maximum(1, np.round(rng.lognormal(np.log(q_med), q_sig))).astype(np.int64)
    price = catalog.prices[product].copy()
    # the real file's quirks: free samples, near-zero prices, rare bulk orders
    quirk = rng.random(len(price))
    price[quirk < 0.002] = 0.0
    price[(quirk >= 0.002) & (quirk < 0.003)] = 0.01
    bulk = rng.random(len(quantity)) < 0.0002
    quantity[bulk] = rng.integers(1_000, 12_000, size=int(bulk.sum()))
    purchases = pd.DataFrame({
        "InvoiceNo": inv_no[line_inv].astype(str),
        "StockCode": catalog.codes[product],
        "Description": catalog.descriptions[product],
        "Quantity": quantity,
        "stamp": inv_time[line_inv],
        "UnitPrice": price,
        "CustomerID": customer_ids[line_cust],
        "Country": countries[line_cust],
    })

    # postage on a share of the foreign customers' invoices
    foreign = countries[inv_customer] != "United Kingdom"
    postage_inv = np.flatnonzero(foreign & (rng.random(len(inv_day)) < 0.6))
    fees = _fee_lines(rng, inv_no[postage_inv], inv_time[postage_inv], customer_ids[inv_customer[postage_inv]],
                      countries[inv_customer[postage_inv]], "POST")
    manual_inv = np.flatnonzero(rng.random(len(inv_day)) < 0.004)
    manual = _fee_lines(rng, inv_no[manual_inv], inv_time[manual_inv], customer_ids[inv_customer[manual_inv]],
                        countries[inv_customer[manual_inv]], "M")

    # returns: cancellation invoices (C prefix) a few days after the purchase, negative quantities
    return_share = np.array([p.return_share for p in PERSONAS])[line_persona]
    incidental = rng.random(len(line_inv)) < 0.008
    returned = (rng.random(len(line_inv)) < return_share) | incidental | bulk
    ret = purchases[returned].copy()
    delay = pd.to_timedelta(rng.integers(0, 20, size=len(ret)), unit="D") + pd.to_timedelta(37, unit="m")
    ret["stamp"] = ret["stamp"] + delay
    partial = np.maximum(1, np.round(ret["Quantity"].to_numpy() * rng.uniform(0.3, 1.0, len(ret)))).astype(np.int64)
    ret["Quantity"] = -np.where(bulk[returned], ret["Quantity"].to_numpy(), partial)
    # one cancellation invoice per purchase invoice being returned against
    ret["InvoiceNo"] = "C" + (ret["InvoiceNo"].astype(int) + 5_000_000).astype(str)
    ret = ret[ret["stamp"] <= PERIOD_END]
    discount_idx = np.flatnonzero(rng.random(len(inv_day)) < 0.003)
    discounts = _fee_lines(rng, inv_no[discount_idx], inv_time[discount_idx],
                           customer_ids[inv_customer[discount_idx]], countries[inv_customer[discount_idx]], "D")
    discounts["InvoiceNo"] = "C" + (discounts["InvoiceNo"].astype(int) + 5_000_000).astype(str)
    discounts["Quantity"] = -1

    identified = pd.concat([purchases, ret, fees, manual, discounts], ignore_index=True)
    truth = pd.DataFrame({"customer_id": customer_ids, "persona": [PERSONAS[i].name for i in persona_idx]})
    return identified, truth


def _keep_whole_customers(identified: pd.DataFrame, budget: int) -> pd.DataFrame:
    """The first customers (by id) whose lines fit in `budget`, so that no customer is cut mid-history."""
    per_customer = identified.groupby("CustomerID").size()
    fitting = per_customer.index[per_customer.cumsum() <= budget]
    return identified[identified["CustomerID"].isin(fitting)]


def _fee_lines(rng: np.random.Generator, invoice_nos: np.ndarray, stamps: pd.DatetimeIndex,
               customers: np.ndarray, countries: np.ndarray, code: str) -> pd.DataFrame:
    description, price = NON_PRODUCT_CODES[code]
    return pd.DataFrame({
        "InvoiceNo": invoice_nos.astype(str),
        "StockCode": code,
        "Description": description,
        "Quantity": rng.integers(1, 4, size=len(invoice_nos)),
        "stamp": stamps,
        "UnitPrice": np.round(price * rng.uniform(0.5, 1.5, len(invoice_nos)), 2),
        "CustomerID": customers,
        "Country": countries,
    })


def _guest_lines(rng: np.random.Generator, catalog: Catalog, day_weights: np.ndarray, state: BlockState,
                 n_lines: int) -> pd.DataFrame:
    """Lines without a customer id: big anonymous invoices, as in the real file."""
    n_inv = max(1, n_lines // 60)
    day = _sample_days(rng, day_weights, np.zeros(n_inv, dtype=int), np.full(n_inv, len(day_weights) - 1))
    stamp = PERIOD_START + pd.to_timedelta(day, unit="D") + pd.to_timedelta(rng.integers(480, 1140, n_inv), unit="m")
    inv = np.arange(state.next_invoice, state.next_invoice + n_inv)
    state.next_invoice += n_inv
    line_inv = rng.integers(0, n_inv, size=n_lines)
    product = rng.choice(N_PRODUCTS, size=n_lines, p=catalog.popularity)
    codes = catalog.codes[product].astype(object)
    descriptions = catalog.descriptions[product].astype(object)
    prices = catalog.prices[product] * 2.0  # the real file's guest lines carry retail prices
    dotcom = rng.random(n_lines) < 0.01
    codes[dotcom], descriptions[dotcom] = "DOT", NON_PRODUCT_CODES["DOT"][0]
    prices[dotcom] = np.round(rng.uniform(20, 900, int(dotcom.sum())), 2)
    missing_description = rng.random(n_lines) < 0.003
    descriptions[missing_description] = None
    prices[missing_description] = 0.0
    return pd.DataFrame({
        "InvoiceNo": inv[line_inv].astype(str),
        "StockCode": codes,
        "Description": descriptions,
        "Quantity": np.maximum(1, np.round(rng.lognormal(np.log(2), 0.8, n_lines))).astype(np.int64),
        "stamp": stamp[line_inv],
        "UnitPrice": np.round(prices, 2),
        "CustomerID": pd.array([pd.NA] * n_lines, dtype="Int64"),
        "Country": np.where(rng.random(n_lines) < 0.97, "United Kingdom", "France"),
    })


def _to_output(lines: pd.DataFrame) -> pd.DataFrame:
    out = lines.sort_values("stamp", kind="stable")
    return pd.DataFrame({
        "InvoiceNo": out["InvoiceNo"].to_numpy(),
        "StockCode": out["StockCode"].to_numpy(),
        "Description": out["Description"].to_numpy(),
        "Quantity": out["Quantity"].to_numpy(),
        "InvoiceDate": _format_dates(pd.DatetimeIndex(out["stamp"])),
        "UnitPrice": out["UnitPrice"].to_numpy(),
        "CustomerID": pd.array(out["CustomerID"], dtype="Int64"),
        "Country": out["Country"].to_numpy(),
    })


def truth_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".personas.csv")


def generate(out: Path, n_lines: int = 500_000, seed: int = 42, truth_out: Path | None = None) -> tuple[int, int]:
    """Write exactly `n_lines` invoice lines to `out` (CSV or Parquet) and the personas to `truth_out`."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    catalog = make_catalog(rng)
    day_weights = _day_weights()
    state = BlockState(next_invoice=FIRST_INVOICE_NO, next_customer=FIRST_CUSTOMER_ID)
    truth_out = truth_out or truth_path_for(out)
    parquet = out.suffix.lower() in {".parquet", ".pq"}
    writer = None
    written = customers = 0
    with (replaced_atomically(out, truth_out) as (partial_out, partial_truth),
          partial_truth.open("w", newline="") as truth_handle):
        truth_writer = csv.writer(truth_handle)
        truth_writer.writerow(["customer_id", "persona"])
        text_handle = None if parquet else partial_out.open("w", newline="")
        try:
            if text_handle:
                text_handle.write(",".join(HEADER) + "\n")
            while written < n_lines:
                identified, truth = _generate_block(rng, catalog, day_weights, state, CUSTOMERS_PER_BLOCK)
                remaining = n_lines - written
                n_guest_lines = int(len(identified) * GUEST_LINE_SHARE / (1 - GUEST_LINE_SHARE))
                if len(identified) + n_guest_lines > remaining:
                    # last block: whole customers up to their share of what is left, guests fill the exact count
                    identified = _keep_whole_customers(identified, int(remaining * (1 - GUEST_LINE_SHARE)))
                    n_guest_lines = remaining - len(identified)
                guests = _guest_lines(rng, catalog, day_weights, state, n_guest_lines)
                frame = _to_output(pd.concat([identified, guests], ignore_index=True))
                present = truth[truth["customer_id"].isin(frame["CustomerID"].dropna().unique())]
                truth_writer.writerows(present.itertuples(index=False, name=None))
                customers += len(present)
                if parquet:
                    import pyarrow as pa
                    import pyarrow.parquet as pq

                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    writer = writer or pq.ParquetWriter(partial_out, table.schema)
                    writer.write_table(table)
                else:
                    frame.to_csv(text_handle, header=False, index=False)
                written += len(frame)
        finally:
            if text_handle:
                text_handle.close()
            if writer:
                writer.close()
    log.info("wrote %s invoice lines of %s customers to %s in %.1f s (personas in %s)", f"{written:,}",
             f"{customers:,}", out, time.perf_counter() - started, truth_out)
    return written, customers
