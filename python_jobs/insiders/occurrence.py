"""Each line's occurrence of its natural key within its sheet, numbered while the lines stream past.

A line's identity is its natural key (invoice, stock code, quantity, price, date-time, customer) and its occurrence,
k for the k-th line of the sheet with that key. Repeated lines sit close together in real exports (copies of a line
belong to one invoice, whose lines are written together), so the lines are numbered block by block against a window
of the last WINDOW_LINES lines before the block, exactly, in bounded memory.

What the window cannot see is caught by a Bloom filter of the invoices whose lines have left it: a line of such an
invoice (or a false positive) makes its whole invoice *unresolved*, and the loader has the server renumber the
lines of those invoices once the file is copied. A file with too many of them (not written invoice by invoice) is
renumbered whole by the server instead. Keys compare as the database compares them: the price by value, a missing
customer equal to another missing customer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

KEY_COLUMNS = ("invoice_no", "stock_code", "quantity", "unit_price", "invoiced_at", "customer_id")
WINDOW_LINES = 20_000  # an invoice's lines spread over more lines than this are renumbered by the server
BLOOM_BITS = 1 << 27  # 16 MiB: about 1 false positive in 10^6 lookups once a million invoices have left the window
BLOOM_HASHES = 4
MAX_UNRESOLVED = 20_000  # more unresolved invoices than this: the server renumbers the whole batch


def _occurrences(keys: pa.Table, known: np.ndarray) -> np.ndarray:
    """The occurrence of each row of `keys` whose `known` occurrence is 0, counting on from the largest known
    occurrence of its key (rows in file order; the known ones are the window, before the others)."""
    held = int(np.count_nonzero(known))
    rows = keys.append_column("row", pa.array(np.arange(keys.num_rows, dtype=np.int64)))
    rows = rows.append_column("known", pa.array(known, pa.int32()))
    # one hash aggregation in Arrow (nulls group together); rows keep their order within a group's list
    groups = rows.group_by(list(KEY_COLUMNS), use_threads=False).aggregate(
        [("row", "list"), ("known", "max"), ("row", "count")])
    occurrence = np.ones(keys.num_rows, dtype=np.int64)
    repeated = groups.filter(pc.greater(groups.column("row_count"), 1))
    if repeated.num_rows:
        lists = repeated.column("row_list").combine_chunks()
        members = pc.list_flatten(lists).to_numpy()
        sizes = pc.list_value_length(lists).to_numpy()
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        base = np.repeat(repeated.column("known_max").to_numpy(), sizes)
        # the window's rows come first in a group: the new rows' rank excludes them
        windowed = np.repeat(np.bincount(np.repeat(np.arange(len(sizes)), sizes), weights=members < held,
                                         minlength=len(sizes)).astype(np.int64), sizes)
        occurrence[members] = base + (np.arange(len(members)) - starts) - windowed + 1
    return occurrence[held:].astype(np.int32)


class _Bloom:
    """A set of 64-bit hashes that may answer yes for one never added (rarely), never no for one added."""

    def __init__(self, bits: int = BLOOM_BITS, hashes: int = BLOOM_HASHES):
        self._bits = np.zeros(bits // 8, dtype=np.uint8)
        self._size = np.uint64(bits)
        self._hashes = hashes

    def _positions(self, digest: np.ndarray) -> np.ndarray:
        low, high = digest & np.uint64(0xFFFFFFFF), (digest >> np.uint64(32)) | np.uint64(1)
        steps = np.arange(self._hashes, dtype=np.uint64)[:, None]
        return ((low[None, :] + steps * high[None, :]) % self._size).astype(np.int64)

    def add(self, digest: np.ndarray) -> None:
        if len(digest):
            positions = self._positions(digest).ravel()
            np.bitwise_or.at(self._bits, positions >> 3, (1 << (positions & 7)).astype(np.uint8))

    def might_hold(self, digest: np.ndarray) -> np.ndarray:
        if not len(digest):
            return np.zeros(0, dtype=bool)
        positions = self._positions(digest)
        return ((self._bits[positions >> 3] >> (positions & 7)) & 1).all(axis=0).astype(bool)


_BYTES = np.arange(8, dtype=np.int64)
# the bytes of a text shorter than 8 that count: lengths 0 to 8 → masks over a little-endian 8-byte word
_LENGTH_MASK = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _text_hash(column: pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each text from its length and its first and last 8 bytes (read from Arrow's buffers, no
    Python object per text): the same text, the same hash; texts that differ only in their middle share one."""
    array = column.combine_chunks()
    if array.null_count or not pa.types.is_string(array.type):
        array = array.cast(pa.string()).fill_null("")
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = np.concatenate([data, np.zeros(8, dtype=np.uint8)])  # reads past a short last text stay in bounds
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
    words = data[starts[:, None] + _BYTES].view("<u8").ravel() & _LENGTH_MASK[np.minimum(lengths, 8)]
    h = _mix(words, lengths.astype(np.uint64))
    longer = np.flatnonzero(lengths > 8)
    if len(longer):  # the last 8 bytes too
        ends = starts[longer] + lengths[longer] - 8
        h[longer] = _mix(h[longer], data[ends[:, None] + _BYTES].view("<u8").ravel())
    return _avalanche(h)


def _avalanche(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer: every bit of the result depends on every bit of `h` (the Bloom filter's positions
    are slices of it)."""
    h = (h ^ (h >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    h = (h ^ (h >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _mix(h: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`h` with `values` folded in, as a polynomial (mixing a with b differs from b with a); `_avalanche` spreads
    the bits once at the end."""
    return h * np.uint64(0x9E3779B97F4A7C15) + values


def _key_hash(keys: pa.Table, invoice_hash: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's natural key: equal keys, equal hashes (different keys rarely share one)."""
    customer = keys.column("customer_id").combine_chunks()
    h = invoice_hash
    for values in (
        _text_hash(keys.column("stock_code")),
        keys.column("quantity").to_numpy().astype(np.int64).view(np.uint64),
        keys.column("unit_price").to_numpy().view(np.uint64),
        keys.column("invoiced_at").cast(pa.int64()).to_numpy().view(np.uint64),
        customer.fill_null(0).to_numpy().view(np.uint64),
        customer.is_null().to_numpy(zero_copy_only=False).astype(np.uint64),
    ):
        h = _mix(h, values)
    return _avalanche(h)


class OccurrenceCounter:
    """Numbers the lines of one file, given block by block in file order (each block of one sheet)."""

    def __init__(self, window: int = WINDOW_LINES, bloom_bits: int = BLOOM_BITS,
                 max_unresolved: int = MAX_UNRESOLVED):
        self._window_size = window
        self._bloom_bits = bloom_bits
        self._max_unresolved = max_unresolved
        self._sheet: str | None = None
        self._reset()
        self.unresolved: set[tuple[str, str]] = set()  # (sheet, invoice) the server renumbers
        self.renumber_all = False  # too many unresolved invoices: the server renumbers the whole batch

    def _reset(self) -> None:
        # the last lines numbered: their key columns, hashes of key and invoice, and occurrences
        self._window: pa.Table | None = None
        self._window_hash = np.zeros(0, dtype=np.uint64)
        self._window_invoice = np.zeros(0, dtype=np.uint64)
        self._window_occurrence = np.zeros(0, dtype=np.int32)
        self._left: _Bloom | None = None  # invoices (hashes) of the lines that have left the window

    def number(self, lines: pa.Table, sheet: str = "") -> pa.Array:
        """The occurrence (int32) of each line of `lines` (key columns as in raw.invoice_lines, in file order)."""
        if sheet != self._sheet:  # occurrences count within a sheet
            self._sheet = sheet
            self._reset()
        keys = pa.table([lines.column(name) for name in KEY_COLUMNS], names=list(KEY_COLUMNS))
        # -0.0 is 0.0 in the database's numeric
        price = keys.schema.get_field_index("unit_price")
        keys = keys.set_column(price, "unit_price", pc.add(keys.column(price), 0.0))
        invoice_hash = _text_hash(keys.column("invoice_no"))
        if self._left is not None:
            self._check_left(keys.column("invoice_no"), invoice_hash)
        held = len(self._window_hash)
        hashes = np.concatenate([self._window_hash, _key_hash(keys, invoice_hash)])
        occurrence = np.ones(keys.num_rows, dtype=np.int32)
        # only lines whose hash another line of the block or the window shares can be a repeat
        candidates = np.flatnonzero(pd.Series(hashes).duplicated(keep=False).to_numpy())
        both = pa.concat_tables([self._window, keys]) if self._window is not None else keys
        if len(candidates) and candidates[-1] >= held:
            known = np.zeros(len(candidates), dtype=np.int32)
            in_window = candidates < held
            known[in_window] = self._window_occurrence[candidates[in_window]]
            occurrence[candidates[~in_window] - held] = _occurrences(both.take(pa.array(candidates)), known)
        self._slide(both, hashes, np.concatenate([self._window_invoice, invoice_hash]),
                    np.concatenate([self._window_occurrence, occurrence]))
        return pa.array(occurrence, pa.int32())

    def _check_left(self, invoices: pa.ChunkedArray, invoice_hash: np.ndarray) -> None:
        distinct = pd.unique(invoice_hash)
        seen = distinct[self._left.might_hold(distinct)]
        if len(seen) and not self.renumber_all:
            named = pc.unique(invoices.filter(pa.array(np.isin(invoice_hash, seen))).combine_chunks())
            self.unresolved.update((self._sheet, invoice) for invoice in named.to_pylist())
            if len(self.unresolved) > self._max_unresolved:
                self.renumber_all, self.unresolved = True, set()

    def _slide(self, both: pa.Table, hashes: np.ndarray, invoice_hash: np.ndarray, occurrence: np.ndarray) -> None:
        """Keep the last lines as the window; the invoices of the lines leaving it go into the Bloom filter."""
        leaving = max(both.num_rows - self._window_size, 0)
        if leaving:
            if self._left is None:
                self._left = _Bloom(self._bloom_bits)
            self._left.add(pd.unique(invoice_hash[:leaving]))
        # a slice: the blocks it spans stay alive until it leaves them (a few blocks at most)
        self._window = both.slice(leaving)
        self._window_hash = hashes[leaving:]
        self._window_invoice = invoice_hash[leaving:]
        self._window_occurrence = occurrence[leaving:]
