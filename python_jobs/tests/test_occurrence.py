"""Occurrences numbered block by block (occurrence.py) against the same numbering over the whole file at once."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from insiders.load import LINES_SCHEMA
from insiders.occurrence import KEY_COLUMNS, OccurrenceCounter


def random_lines(n: int, seed: int, spread: int) -> pa.Table:
    """Invoices of a few lines in file order, some lines repeated up to `spread` lines later (as a line another
    part of the export repeats), prices that differ only in sign of zero, guests without a customer."""
    rng = np.random.default_rng(seed)
    invoice = np.repeat(np.arange(n // 4 + 1), 4)[:n]
    rows = pd.DataFrame({
        "invoice_no": invoice.astype(str),
        "stock_code": rng.integers(0, 6, n).astype(str),
        "quantity": rng.integers(1, 3, n).astype(np.int32),
        "unit_price": rng.choice([0.0, -0.0, 1.25], n),
        "invoiced_at": [datetime(2011, 1, 1) + timedelta(minutes=int(i)) for i in invoice],
        "customer_id": pd.array(np.where(rng.random(n) < 0.3, None, rng.integers(1, 3, n)), dtype="Int64"),
    })
    repeated = rng.choice(n, n // 5, replace=False)
    later = np.minimum(repeated + rng.integers(1, spread + 1, len(repeated)), n - 1)
    copied = np.arange(n)
    copied[later] = repeated
    rows = rows.iloc[copied].reset_index(drop=True)
    table = pa.Table.from_pandas(rows, preserve_index=False)
    return pa.table({name: table.column(name).cast(LINES_SCHEMA.field(name).type) for name in KEY_COLUMNS})


def expected(lines: pa.Table) -> np.ndarray:
    frame = lines.to_pandas()
    frame["unit_price"] = frame["unit_price"] + 0.0  # the database's numeric has no -0
    return frame.groupby(list(KEY_COLUMNS), dropna=False, sort=False).cumcount().to_numpy() + 1


def numbered(lines: pa.Table, block: int, **options) -> tuple[np.ndarray, OccurrenceCounter]:
    counter = OccurrenceCounter(**options)
    parts = [counter.number(lines.slice(start, block)).to_numpy() for start in range(0, lines.num_rows, block)]
    return np.concatenate(parts), counter


@pytest.mark.parametrize(("block", "window", "spread"), [(1000, 2000, 50), (97, 10, 500), (5000, 50_000, 4000)])
def test_blocks_number_as_the_whole_file_does_except_what_the_server_renumbers(block, window, spread):
    lines = random_lines(5000, seed=block, spread=spread)
    occurrence, counter = numbered(lines, block, window=window)
    truth = expected(lines)
    assert (truth > 1).sum() > 500  # the lines do repeat, within invoices and across blocks
    unresolved = np.isin(lines.column("invoice_no").to_numpy(zero_copy_only=False),
                         [invoice for _, invoice in counter.unresolved])
    assert not counter.renumber_all
    assert (occurrence[~unresolved] == truth[~unresolved]).all()
    if window >= spread:  # the window sees every repeat: nothing is left to the server
        assert not counter.unresolved and (occurrence == truth).all()
    else:  # repeats farther apart than the window: their invoices are left to the server
        assert counter.unresolved and (occurrence[unresolved] != truth[unresolved]).any()


def test_too_many_unresolved_invoices_leave_the_whole_batch_to_the_server():
    lines = random_lines(3000, seed=3, spread=1000)
    _, counter = numbered(lines, 100, window=5, max_unresolved=10)
    assert counter.renumber_all and not counter.unresolved


def test_each_sheet_counts_on_its_own():
    lines = random_lines(400, seed=4, spread=20)
    counter = OccurrenceCounter()
    first = counter.number(lines, "Year 2009-2010").to_numpy()
    second = counter.number(lines, "Year 2010-2011").to_numpy()
    assert (first == expected(lines)).all() and (second == first).all()
