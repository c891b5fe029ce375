"""Arrow columns in PostgreSQL's binary COPY format, built column by column with numpy and pyarrow.

The server reads binary COPY without parsing text (no CSV splitting, no number or date input functions): at ten
million lines the loader's COPY is what the server spends the load on, and it is the part the server does alone.
Each field is one binary array holding, per row, the field's length (int32, -1 for null) and its bytes; a row is
its field count followed by its fields, joined by Arrow, and a block of rows is the joined array's data.

https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4 (file format)
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no OIDs, no header extension
TRAILER = b"\xff\xff"
NULL = b"\xff\xff\xff\xff"

POSTGRES_EPOCH = 946_684_800  # 2000-01-01 in Unix seconds: timestamps count microseconds from it
NUMERIC_BASE = 10_000  # numeric digits are base 10000, grouped around the decimal point
NUMERIC_NEGATIVE = 0x4000
# the vectorised numeric: prices below 10^10 with at most 8 decimals, as 3 integer and 2 fractional base-10000
# digits (leading and trailing zero digits are allowed: the server strips them)
FAST_NUMERIC_LIMIT = 1e10
FAST_NUMERIC_DECIMALS = 8
FAST_NUMERIC_INTEGER_DIGITS = 3
FAST_NUMERIC_FRACTION_DIGITS = 2
EXACT_INTEGERS = 2.0**53  # a float64 holds every integer below this


def _binary(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A binary array over numpy offsets (int32, one more than rows) and bytes, without copying them."""
    return pa.Array.from_buffers(pa.binary(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _fixed(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Fields of one fixed width: `values` already in network byte order, one row each; null where not `valid`."""
    n, width = len(values), values.dtype.itemsize
    block = np.empty((n, 4 + width), np.uint8)
    block[:, :4] = np.array([width], ">i4").view(np.uint8)
    block[:, 4:] = values.view(np.uint8).reshape(n, width)
    if valid is None or valid.all():
        return _binary(np.arange(0, (n + 1) * (4 + width), 4 + width, dtype=np.int32), block.reshape(-1))
    block[~valid, :4] = np.frombuffer(NULL, np.uint8)
    kept = np.ones((n, 4 + width), bool)
    kept[~valid, 4:] = False
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.where(valid, 4 + width, 4), out=offsets[1:])
    return _binary(offsets, block[kept])


def integers(column: pa.Array, kind: str) -> pa.Array:
    """int4 (`kind` ">i4") or int8 (">i8") fields; nulls as null."""
    valid = None if column.null_count == 0 else pc.is_valid(column).to_numpy(zero_copy_only=False)
    values = column.fill_null(0).to_numpy(zero_copy_only=False)
    return _fixed(values.astype(kind), valid)


def constant_integers(value: int, rows: int, kind: str) -> pa.Array:
    return _fixed(np.full(rows, value, dtype=kind))


def timestamps(column: pa.Array) -> pa.Array:
    """timestamp fields (microseconds since 2000-01-01) of a timestamp[s] column without nulls, whose values the
    caller has kept within years 1 to 9999."""
    seconds = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return _fixed(((seconds - POSTGRES_EPOCH) * 1_000_000).astype(">i8"))


def texts(column: pa.Array) -> list[pa.Array]:
    """text fields, as two arrays to join: the lengths (null as -1) and the UTF-8 bytes (null as none)."""
    n = len(column)
    lengths = pc.binary_length(column).fill_null(-1).to_numpy(zero_copy_only=False).astype(">i4")
    prefixes = _binary(np.arange(0, 4 * n + 1, 4, dtype=np.int32), lengths.view(np.uint8))
    return [prefixes, column.cast(pa.binary()).fill_null(b"")]


def numeric_bytes(value: Decimal) -> bytes:
    """One numeric value with its scale (the digits after the point that its text shows, as numeric_in keeps)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not a finite number")
    scale = max(0, -exponent)
    coefficient = int("".join(map(str, digits)) or "0")
    shift = exponent % 4  # the coefficient times 10^shift has an exponent that is a whole number of base digits
    coefficient *= 10**shift
    groups: list[int] = []
    while coefficient:
        coefficient, group = divmod(coefficient, NUMERIC_BASE)
        groups.append(group)
    groups.reverse()
    weight = len(groups) - 1 + (exponent - shift) // 4 if groups else 0
    header = [len(groups), weight, NUMERIC_NEGATIVE if sign and groups else 0, scale]
    return np.array(header + groups, ">i2").tobytes()


def _shortest_decimals(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each price, the fewest decimals d (1 to FAST_NUMERIC_DECIMALS) whose integer m = price * 10^d gives the
    price back, as Python's shortest repr does (a whole number shows one decimal: 18.0), m itself, and whether both
    were found with m held exactly. A division of exact integers rounds correctly, so m / 10^d == price says that
    the text of m with d decimals reads as the price."""
    decimals = np.zeros(len(prices), np.int64)
    units = np.zeros(len(prices), np.float64)
    found = np.zeros(len(prices), bool)
    for d in range(1, FAST_NUMERIC_DECIMALS + 1):
        scale = 10.0**d
        with np.errstate(over="ignore", invalid="ignore"):  # the largest prices overflow: they fit no d
            candidate = np.rint(prices * scale)
            fits = ~found & (candidate / scale == prices) & (np.abs(candidate) < EXACT_INTEGERS)
        decimals[fits] = d
        units[fits] = candidate[fits]
        found |= fits
    return decimals, units, found


def numerics(prices: np.ndarray) -> pa.Array:
    """numeric fields of finite float64 prices, each with the digits of its shortest repr (18.0 for 18, 2.5 for
    2.50, 0.00001 for 1e-05): what numeric_in makes of that text, scale included. Most prices are encoded at once;
    a price of 10^10 or more, with more than 8 decimals, or whose digits make an integer of 2^53 or more goes
    through Decimal."""
    n = len(prices)
    decimals, units, found = _shortest_decimals(prices)
    fast = found & (np.abs(prices) < FAST_NUMERIC_LIMIT)
    # every fast price as a count of 10^-8, below 10^18: int64 holds it
    smallest_units = np.where(fast, np.abs(units).astype(np.int64) * 10 ** (FAST_NUMERIC_DECIMALS - decimals), 0)
    digit_count = FAST_NUMERIC_INTEGER_DIGITS + FAST_NUMERIC_FRACTION_DIGITS
    words = np.empty((n, 4 + digit_count), np.int64)
    words[:, 0] = digit_count
    words[:, 1] = FAST_NUMERIC_INTEGER_DIGITS - 1
    words[:, 2] = np.where(np.signbit(prices) & (units != 0), NUMERIC_NEGATIVE, 0)
    words[:, 3] = decimals
    for position in range(digit_count - 1, -1, -1):
        smallest_units, words[:, 4 + position] = np.divmod(smallest_units, NUMERIC_BASE)
    fields = _fixed(np.ascontiguousarray(words.astype(">i2")).view(f"V{2 * (4 + digit_count)}").reshape(n))
    slow = np.flatnonzero(~fast)
    if len(slow):
        values = [numeric_bytes(Decimal(repr(float(prices[row])))) for row in slow]
        encoded = pa.array([len(value).to_bytes(4, "big") + value for value in values], pa.binary())
        fields = pc.replace_with_mask(fields, pa.array(~fast), encoded)
    return fields


def rows(fields: Sequence[pa.Array | list[pa.Array]]) -> pa.Buffer:
    """The COPY rows of equally long field arrays (each from the functions above), one after the other."""
    pieces: list[pa.Array | pa.Scalar] = [pa.scalar(np.array([len(fields)], ">i2").tobytes(), pa.binary())]
    for field in fields:
        pieces += field if isinstance(field, list) else [field]
    joined = pc.binary_join_element_wise(*pieces, pa.scalar(b"", pa.binary()))
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    offsets = np.frombuffer(joined.buffers()[1], np.int32, len(joined) + 1, joined.offset * 4)
    return joined.buffers()[2][int(offsets[0]):int(offsets[-1])]
