"""`insiders load`: invoice files (CSV, XLSX, Parquet) into raw.invoice_lines with COPY, one transaction per file.

Every line read is loaded, found to be a duplicate of a line already loaded, or kept in raw.rejected_invoice_lines
with its reason: read = loaded + duplicate + rejected. A line is identified by its natural key (invoice, stock code,
quantity, price, date-time, customer) and its occurrence: the k-th line of a sheet with that key is occurrence k, so
a file's own repeated lines all stay, and another file or sheet repeating them adds nothing, whatever the order in
which overlapping files are loaded. The occurrences are numbered as the blocks stream past (occurrence.py; the
server renumbers the few invoices spread wider than its window) and the lines are copied straight into
raw.invoice_lines; then, only when lines of other batches (or other sheets) share the batch's period, one statement
deletes the batch's lines already held. Loads take turns on the table (a lock that readers pass), so no unique
index has to be kept up to date line by line: that index made loading twice as slow.

CSV and Parquet are read with pyarrow in blocks of bounded size (CSV: the streaming reader, every field as text;
Parquet: a batch at a time), checked and typed column-wise with pyarrow.compute, and streamed into one binary `COPY`
per file (copy_binary.py) from a background thread, so that reading the next block overlaps with the server storing
the previous one.
Memory does not grow with the number of lines: a few blocks are alive at a time, plus the distinct date texts (at
most one per minute of the file's period). XLSX rows are read with openpyxl and checked the same way.

A CSV is read twice: the dates alone first (the format is chosen once, on every date of the file), then every
field. Source lines are the physical lines of the file (header = line 1, a record spanning lines counts its last,
as the csv module does); pyarrow numbers the records, and where records and lines differ (quoted line breaks,
empty lines) the difference is accounted for, or the file is read by the csv module.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import logging
import math
import queue
import re
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg.copy import LibpqWriter

from . import copy_binary, db
from .errors import InsidersError
from .occurrence import OccurrenceCounter
from .progress import track

log = logging.getLogger(__name__)

CHUNK_LINES = 200_000  # at most this many lines are checked and copied at a time
# bytes of CSV pyarrow parses at a time; its reader reads up to 32 blocks ahead, so this bounds memory too
CSV_BLOCK_BYTES = 2 << 20
SCAN_BLOCK_BYTES = 4 << 20
PARQUET_BATCH_LINES = 32_768  # small blocks: the server starts storing early, and is not left alone at the end
COPY_BLOCK_BYTES = 256 << 20  # lines encoded for COPY at a time, at most: Arrow's binary arrays hold under 2 GiB
COPY_QUEUE_DEPTH = 2  # blocks ready for COPY that may wait for the server at a time
ANALYZE_MIN_LINES = 50_000  # a load of at least this many lines refreshes the planner's statistics
BATCH_LINES_IN_SAMPLE = 10  # lines of a small load that the statistics' sample should hold, on average
SAMPLE_LINES_PER_TARGET = 300  # PostgreSQL's analyze samples this many lines per unit of statistics target
MIN_STATISTICS_TARGET = 10  # the smallest target a small load's analyze uses (PostgreSQL's default is 100)
REJECT_SPOOL_BYTES = 8 << 20  # refused lines past this size wait for their COPY in a temporary file
BINARY_SHARE = 0.05  # a CSV whose first block has more control characters than this is not text (random: 11%)

# canonical column -> normalized header spellings (lower-case, letters and digits only) of the known layouts
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "invoice_no": ("invoiceno", "invoice"),
    "stock_code": ("stockcode",),
    "description": ("description",),
    "quantity": ("quantity",),
    "invoice_date": ("invoicedate",),
    "unit_price": ("unitprice", "price"),
    "customer_id": ("customerid",),
    "country": ("country",),
}
DISPLAY_NAMES = {
    "invoice_no": "InvoiceNo", "stock_code": "StockCode", "description": "Description", "quantity": "Quantity",
    "invoice_date": "InvoiceDate", "unit_price": "UnitPrice", "customer_id": "CustomerID", "country": "Country",
}
# headers of a stray index column written by pandas or spreadsheets
INDEX_HEADERS = {"", "unnamed0", "index"}

# tried in this order; the first one that parses the most distinct values of the file wins
DATE_FORMATS = (
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%d-%b-%y",
    "%d-%b-%Y",
    "%d-%b-%y %H:%M",
    "%m/%d/%y %H:%M",
    "%d/%m/%y %H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y %H:%M",
)

RAW_COLUMNS = (
    "source_sheet", "source_line", "invoice_no", "stock_code", "description", "quantity", "invoiced_at",
    "unit_price", "customer_id", "country",
)
REJECT_COLUMNS = ("source_sheet", "source_line", "raw_text", "reason")
INT32_MAX = 2**31 - 1
INT64_LIMIT = 2.0**63 - 1024  # the largest float64 below 2**63
# the dates a line may carry: Python's, well within PostgreSQL's (a native Parquet timestamp may lie beyond both)
FIRST_DATE = pa.scalar(datetime(1, 1, 1), pa.timestamp("s"))
END_DATE = pa.scalar(253_402_300_800, pa.timestamp("s"))  # 10000-01-01, which datetime cannot hold
# the finite numbers pandas.to_numeric reads (after stripping), all of which pyarrow's cast to float64 reads too
NUMBER_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"

LINES_SCHEMA = pa.schema([
    ("source_sheet", pa.string()), ("source_line", pa.int64()), ("invoice_no", pa.string()),
    ("stock_code", pa.string()), ("description", pa.string()), ("quantity", pa.int32()),
    ("invoiced_at", pa.timestamp("s")), ("unit_price", pa.float64()), ("customer_id", pa.int64()),
    ("country", pa.string()),
])
COPY_LINES = ("copy invoice_lines (batch_id, " + ", ".join(RAW_COLUMNS) + ", line_occurrence)"
              " from stdin (format binary)")
COPY_FRESH_LINES = COPY_LINES.replace("(format binary)", "(format binary, freeze)")
NATURAL_KEY = ("invoice_no", "stock_code", "quantity", "unit_price", "invoiced_at", "customer_id")


def _renumber_sql(where: str) -> str:
    """Renumbers the occurrences of the batch's lines selected by `where` (over `lines`) in one statement."""
    partition = ", ".join(f"lines.{column}" for column in NATURAL_KEY)
    return (
        "update invoice_lines set line_occurrence = numbered.occurrence from ("
        " select lines.source_sheet, lines.source_line, row_number() over (partition by " + partition +
        ", lines.source_sheet order by lines.source_line) as occurrence from invoice_lines as lines " + where +
        ") as numbered where invoice_lines.batch_id = %(batch_id)s"
        " and invoice_lines.source_sheet = numbered.source_sheet and invoice_lines.source_line = numbered.source_line"
        " and invoice_lines.line_occurrence != numbered.occurrence"
    )


# the invoices whose lines the client could not number alone (spread over more than its window), or every line
RENUMBER_INVOICES = _renumber_sql(
    "inner join unnest(%(sheets)s::text[], %(invoices)s::text[]) as unresolved (source_sheet, invoice_no)"
    " on lines.source_sheet = unresolved.source_sheet and lines.invoice_no = unresolved.invoice_no"
    " where lines.batch_id = %(batch_id)s")
RENUMBER_BATCH = _renumber_sql("where lines.batch_id = %(batch_id)s")
# whether lines of other batches share the batch's period (a BRIN index on invoiced_at finds them)
HELD_IN_PERIOD = ("select exists (select 1 from invoice_lines where invoiced_at between %(first)s and %(last)s"
                  " and batch_id != %(batch_id)s)")
# the batch's lines whose key and occurrence another batch holds, or an earlier sheet (by name) of this one
DELETE_HELD_LINES = (
    "delete from invoice_lines as incoming using invoice_lines as held"
    " where incoming.batch_id = %(batch_id)s and held.invoiced_at between %(first)s and %(last)s"
    " and (held.batch_id != %(batch_id)s or held.source_sheet < incoming.source_sheet)"
    " and held.line_occurrence = incoming.line_occurrence"
    " and held.customer_id is not distinct from incoming.customer_id"
    + "".join(f" and held.{column} = incoming.{column}" for column in NATURAL_KEY if column != "customer_id")
)
COPY_REJECTS = ("copy rejected_invoice_lines (batch_id, " + ", ".join(REJECT_COLUMNS) + ")"
                " from stdin (format csv, encoding 'utf8')")

Reject = tuple[str, int, str, str]  # source_sheet, source_line, raw_text, reason


@dataclass
class LoadResult:
    path: Path
    batch_id: int
    lines_read: int
    lines_loaded: int
    lines_rejected: int
    lines_duplicate: int = 0  # lines already loaded from another file or sheet (or earlier in this one)
    already_loaded: bool = False
    seconds: float = 0.0
    date_format: str | None = None
    rejected_examples: list[str] = field(default_factory=list)


@dataclass
class Chunk:
    """A block of lines as read: every field by position (text for CSV and XLSX, native types for Parquet; kept as
    read for the raw text of refused lines), where the canonical columns are, the source line of each row, and the
    lines refused while reading (wrong number of fields)."""

    table: pa.Table
    positions: dict[str, int]
    lines: np.ndarray
    sheet: str = ""
    pre_rejected: list[Reject] = field(default_factory=list)
    dates: DateLookup | None = None  # the file's date texts, parsed once


# -- columns and formats -----------------------------------------------------------------------------------

def _normalize_header(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name if name is not None else "").lower())


def map_columns(header: Sequence[object], source: str) -> tuple[dict[str, int], str]:
    """Position of each canonical column in `header`, and the name of the layout it follows."""
    positions: dict[str, int] = {}
    normalized = [_normalize_header(h) for h in header]
    for canonical, aliases in COLUMN_ALIASES.items():
        for i, name in enumerate(normalized):
            if name in aliases:
                positions[canonical] = i
                break
    missing = [DISPLAY_NAMES[c] for c in COLUMN_ALIASES if c not in positions]
    if missing:
        found = ", ".join(repr(str(h)) for h in header if _normalize_header(h) not in INDEX_HEADERS) or "none"
        raise InsidersError(
            f"{source}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; found columns: {found}. "
            "Expected the UCI Online Retail layout (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, "
            "UnitPrice, CustomerID, Country) or Online Retail II (Invoice, …, Price, Customer ID, Country)."
        )
    layout = "online_retail_ii" if normalized[positions["invoice_no"]] == "invoice" else "uci_online_retail"
    return positions, layout


def detect_date_format(values: Iterable[object], source: str) -> str | None:
    """The one format for the whole file, chosen on its distinct date texts; None when dates are native."""
    return _detect_dates(values, source)[0]


def _detect_dates(values: Iterable[object], source: str) -> tuple[str | None, DateLookup | None]:
    """`detect_date_format`, and the distinct texts parsed with the format chosen (to be looked up, not parsed
    again, as the lines are read)."""
    values = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    raw = pd.Series(pd.unique(values.dropna()))
    if raw.empty:
        return None, None
    if all(isinstance(v, (datetime, pd.Timestamp, np.datetime64)) for v in raw[:1000]):
        return None, None
    texts = raw.astype(str).str.strip()
    given = (texts != "").to_numpy()
    texts = texts[given]
    best, best_parsed, best_dates = None, 0, None
    for fmt in DATE_FORMATS:
        dates = pd.to_datetime(texts, format=fmt, errors="coerce")
        parsed = int(dates.notna().sum())
        if parsed > best_parsed:
            best, best_parsed, best_dates = fmt, parsed, dates
        if parsed == len(texts):
            break
    if best is None:
        examples = ", ".join(repr(v) for v in texts[:3])
        raise InsidersError(f"{source}: no known date format matches column InvoiceDate (examples: {examples})")
    log.info("%s: date format %s detected (parses %s of %s distinct values)", source, best,
             f"{best_parsed:,}", f"{len(texts):,}")
    lookup = None
    if all(isinstance(v, str) for v in raw[:1000]):
        lookup = DateLookup(best, raw[given].to_numpy(), best_dates.to_numpy())
    return best, lookup


class DateLookup:
    """The distinct date texts of a file (as read, surrounding spaces included), each parsed once: the lines'
    dates are looked up by text, batch by batch. A text not seen when the format was chosen is parsed then."""

    def __init__(self, date_format: str, texts: np.ndarray, dates: np.ndarray):
        self.date_format = date_format
        self._index = pd.Index(texts, dtype=object)
        self._dates = dates.astype("datetime64[s]")

    def __call__(self, column: pa.Array) -> pa.Array:
        encoded = pc.dictionary_encode(column)
        texts = encoded.dictionary.to_numpy(zero_copy_only=False)
        where = self._index.get_indexer(texts)
        dates = self._dates[np.maximum(where, 0)]
        unseen = where < 0
        if unseen.any():
            dates[unseen] = _parse_date_texts(texts[unseen], self.date_format).to_numpy().astype("datetime64[s]")
        return pa.array(dates, pa.timestamp("s"), from_pandas=True).take(encoded.indices)


@dataclass
class FileScan:
    """What one pass over the bytes of a file tells: its SHA-256, its text encoding and, for CSV, how its lines
    break (to tell, once pyarrow has counted the records, whether each record is one physical line)."""

    sha256: str
    encoding: str
    has_quote: bool = False
    content_lines: int | None = None  # physical lines up to the last one with anything but line breaks
    last_content: int = -1  # offset of the last byte that is not a line break


def _breaks(data: bytes | str) -> int:
    """Line breaks in `data` (bytes or text): \\n, \\r\\n or a lone \\r, as Python's csv module counts lines."""
    newline, carriage_return, both = ("\n", "\r", "\r\n") if isinstance(data, str) else (b"\n", b"\r", b"\r\n")
    carriage = data.count(carriage_return)
    return data.count(newline) + carriage - (data.count(both) if carriage else 0)


def scan_file(path: Path, lines: bool = False) -> FileScan:
    """SHA-256 of the file and its text encoding, in one pass: UTF-8 (with or without BOM) when the whole file
    decodes as such, else Latin-1, which decodes anything. With `lines`, also how its lines break. The hash is
    computed by a second thread (hashlib lets go of the GIL) while this one looks at the text."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    bom = None
    has_quote = False
    breaks = content_lines = offset = 0
    last_content = -1
    previous = b""
    with path.open("rb") as handle, ThreadPoolExecutor(1, thread_name_prefix="insiders-sha256") as hasher:
        hashed = None
        for block in iter(lambda: handle.read(SCAN_BLOCK_BYTES), b""):
            if hashed is not None:
                hashed.result()
            hashed = hasher.submit(digest.update, block)
            if bom is None:
                bom = block.startswith(codecs.BOM_UTF8)
            if utf8 and not (block.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
            has_quote = has_quote or b'"' in block
            if lines:
                breaks += _breaks(block) - (previous == b"\r" and block[:1] == b"\n")
                content = block.rstrip(b"\r\n")
                if content:
                    last_content = offset + len(content) - 1
                    content_lines = breaks - _breaks(block[len(content):]) + 1
                previous = block[-1:]
            offset += len(block)
        if hashed is not None:
            hashed.result()
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    encoding = ("utf-8-sig" if bom else "utf-8") if utf8 else "latin-1"
    return FileScan(digest.hexdigest(), encoding, has_quote, content_lines if lines else None, last_content)


def _empty_line_before(path: Path, end: int) -> bool:
    """Whether an empty line (two line breaks in a row) starts before byte `end`."""
    offset = 0
    previous = b""
    with path.open("rb") as handle:
        while offset < end and (block := handle.read(SCAN_BLOCK_BYTES)):
            data = previous + block  # a pair split across blocks is found too
            found = [i for i in (data.find(b"\n\n"), data.find(b"\n\r"), data.find(b"\r\r")) if i >= 0]
            if (offset == 0 and block[:1] in (b"\n", b"\r")) or (
                    found and offset - len(previous) + min(found) + 1 < end):
                return True
            offset += len(block)
            previous = block[-1:]
    return False


def _join_raw(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def _column_names(n: int) -> list[str]:
    return [str(i) for i in range(n)]


def _text_cell(value: object) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _chunk_from_rows(rows: list[Sequence[object]], lines: list[int], sheet: str, width: int,
                     positions: dict[str, int], pre_rejected: list[Reject] | None = None) -> Chunk:
    """A chunk from rows of Python values (the csv module's or a worksheet's): every field as text, except a date
    column made only of dates and times, kept native."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * width
    arrays = []
    for i, values in enumerate(columns):
        native = i == positions["invoice_date"] and any(v is not None for v in values) and all(
            v is None or isinstance(v, (datetime, date)) for v in values)
        if native:
            arrays.append(pa.array([v if v is None or isinstance(v, datetime) else datetime(v.year, v.month, v.day)
                                    for v in values], pa.timestamp("us")))
        else:
            arrays.append(pa.array([_text_cell(v) for v in values], pa.string()))
    table = pa.Table.from_arrays(arrays, names=_column_names(width))
    return Chunk(table, positions, np.asarray(lines, dtype=np.int64), sheet, pre_rejected or [])


def _slices(table: pa.Table, positions: dict[str, int], lines: np.ndarray, pre_rejected: list[Reject],
            dates: DateLookup | None) -> Iterator[Chunk]:
    """`table` in chunks of at most CHUNK_LINES rows; the lines refused while reading go with the first."""
    step = max(1, CHUNK_LINES)
    for start in range(0, max(table.num_rows, 1), step):
        yield Chunk(table.slice(start, step), positions, lines[start:start + step], "",
                    pre_rejected if start == 0 else [], dates)


# -- readers: each yields chunks of fields as read ---------------------------------------------------------

@dataclass
class SourceFile:
    path: Path
    file_format: str
    layout: str = ""
    encoding: str | None = None
    date_format: str | None = None
    scan: FileScan | None = None


@dataclass
class CsvLayout:
    header: list[str]
    delimiter: str
    positions: dict[str, int]
    header_lines: int  # physical lines of the header record

    @property
    def width(self) -> int:
        return len(self.header)


def _csv_dialect(sample: str) -> str:
    header = sample.splitlines()[0] if sample else ""
    return max((",", ";", "\t", "|"), key=header.count)


def _csv_layout(source: SourceFile) -> CsvLayout:
    with source.path.open(newline="", encoding=source.encoding) as handle:
        sample = handle.read(65536)
        # C0 controls only: text in Windows-1252 read as Latin-1 has C1 ones (curly quotes, dashes)
        controls = sum(1 for c in sample if (c < " " and c not in "\t\r\n") or c == "\x7f")
        if "\x00" in sample or controls > BINARY_SHARE * len(sample):
            raise InsidersError(f"{source.path.name}: not a text file (binary content); expected CSV, XLSX or "
                                "Parquet")
        delimiter = _csv_dialect(sample)
        handle.seek(0)
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise InsidersError(f"{source.path.name}: the file is empty")
        header_lines = reader.line_num
    positions, source.layout = map_columns(header, source.path.name)
    return CsvLayout(header, delimiter, positions, header_lines)


def _quoted(source: SourceFile) -> bool:
    return source.scan is None or source.scan.has_quote


def _open_arrow_csv(source: SourceFile, layout: CsvLayout, handler,
                    include: list[str] | None = None) -> pacsv.CSVStreamingReader:
    """pyarrow's streaming CSV reader over the data lines, every field as text. Without threads pyarrow numbers
    the records it refuses (header = 1), which the line numbers rest on."""
    names = _column_names(layout.width)
    return pacsv.open_csv(
        source.path,
        read_options=pacsv.ReadOptions(
            use_threads=False, block_size=CSV_BLOCK_BYTES, skip_rows=1, column_names=names,
            encoding="latin-1" if source.encoding == "latin-1" else "utf8",
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=layout.delimiter, quote_char='"', double_quote=True, escape_char=False,
            newlines_in_values=_quoted(source), ignore_empty_lines=True,
            invalid_row_handler=handler,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False,
            quoted_strings_can_be_null=False, include_columns=include, check_utf8=False,
        ),
    )


def _blank(text: str, delimiter: str) -> bool:
    """A record of nothing but spaces and delimiters: no data, not counted as read."""
    fields = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    return not any(value.strip() for value in fields)


def read_csv(source: SourceFile) -> Iterator[Chunk]:
    """CSV through pyarrow. A first pass reads the dates alone (the format is chosen once, on every date of the
    file) and counts the records; when every record is one physical line, or the file has no empty line before
    its last record (only quoted line breaks), pyarrow's record numbers give the physical line numbers. Otherwise
    (empty lines inside the file) the csv module reads it, line by line."""
    layout = _csv_layout(source)
    scan = source.scan if source.scan and source.scan.content_lines is not None else scan_file(source.path, True)
    refused: list[None] = []

    def count(row) -> str:
        refused.append(None)
        return "skip"

    try:
        valid = 0
        distinct = _Distinct()
        for batch in _open_arrow_csv(source, layout, count, include=[str(layout.positions["invoice_date"])]):
            valid += batch.num_rows
            distinct.add(batch.column(0))
    except pa.ArrowInvalid as exc:
        log.info("%s: pyarrow cannot read the file (%s); reading it line by line", source.path.name, exc)
        yield from _read_csv_rows(source, layout, detect=True)
        return
    source.date_format, dates = _detect_dates(distinct.values(), source.path.name)
    del distinct
    records = 1 + valid + len(refused)
    extra_lines = scan.content_lines - records - (layout.header_lines - 1)
    if extra_lines == 0:
        yield from _read_csv_arrow(source, layout, records, dates, multiline=False)
    elif extra_lines > 0 and scan.has_quote and not _empty_line_before(source.path, scan.last_content):
        yield from _read_csv_arrow(source, layout, records, dates, multiline=True)
    else:
        log.info("%s: empty lines inside the file; reading it line by line", source.path.name)
        yield from _read_csv_rows(source, layout, detect=False)


class _Distinct:
    """The distinct values of a column read block by block, kept by pyarrow."""

    def __init__(self) -> None:
        self._parts: list[pa.Array] = []
        self._held = self._merged = 0

    def add(self, column: pa.Array | pa.ChunkedArray) -> None:
        part = pc.unique(_plain(column))
        self._parts.append(part)
        self._held += len(part)
        if self._held > 2 * self._merged + 100_000:  # merged when twice as many: linear time, bounded memory
            self._parts = [pc.unique(pa.concat_arrays(self._parts))]
            self._held = self._merged = len(self._parts[0])

    def values(self) -> pd.Series:
        if not self._parts:
            return pd.Series([], dtype=object)
        return pd.Series(pc.unique(pa.concat_arrays(self._parts)).to_numpy(zero_copy_only=False), dtype=object)


def _read_csv_arrow(source: SourceFile, layout: CsvLayout, records: int, dates: DateLookup | None,
                    multiline: bool) -> Iterator[Chunk]:
    """The data lines through pyarrow's streaming reader. Source line of a record = its record number (header = 1)
    plus the line breaks inside quoted fields up to and including it (the csv module's line_num: the record's last
    line)."""
    pending: deque[tuple[int, str, int]] = deque()  # refused records: number, text, fields found

    def refuse(row) -> str:
        if row.number is None:
            raise InsidersError(f"{source.path.name}: pyarrow did not number a refused line")
        pending.append((row.number, row.text, row.actual_columns))
        return "skip"

    width, delimiter = layout.width, layout.delimiter
    next_record = 2
    offset = layout.header_lines - 1  # line breaks inside quoted fields so far

    def rejects_of(refused: list[tuple[int, str, int]], lines: Sequence[int]) -> list[Reject]:
        return [("", int(line), text.rstrip("\r\n"), f"expected {width} fields, found {found}")
                for (_, text, found), line in zip(refused, lines, strict=True) if not _blank(text, delimiter)]

    for batch in _open_arrow_csv(source, layout, refuse):
        n = batch.num_rows
        end = next_record + n
        refused: list[tuple[int, str, int]] = []
        while pending and pending[0][0] < end:
            refused.append(pending.popleft())
            end += 1
        numbers = np.arange(next_record, end, dtype=np.int64)
        valid = np.ones(len(numbers), dtype=bool)
        if refused:
            valid[np.array([r[0] for r in refused], dtype=np.int64) - next_record] = False
        if multiline:
            extra = np.zeros(len(numbers), dtype=np.int64)
            extra[valid] = _quoted_line_breaks(batch)
            extra[~valid] = [_breaks(text) for _, text, _ in refused]
            numbers = numbers + offset + np.cumsum(extra)
            offset += int(extra.sum())
        else:
            numbers = numbers + offset
        table = pa.Table.from_batches([batch])
        yield from _slices(table, layout.positions, numbers[valid], rejects_of(refused, numbers[~valid]), dates)
        next_record = end
    if pending:  # refused records after the last one read
        refused = list(pending)
        lines = []
        for number, text, _ in refused:
            offset += _breaks(text) if multiline else 0
            lines.append(number + offset)
        next_record = refused[-1][0] + 1
        yield Chunk(pa.Table.from_arrays([pa.array([], pa.string())] * width, names=_column_names(width)),
                    layout.positions, np.zeros(0, dtype=np.int64), "", rejects_of(refused, lines))
    if next_record - 1 != records:
        raise InsidersError(f"{source.path.name}: {next_record - 1:,} records on the second reading, "
                            f"{records:,} on the first; did the file change while loading?")


def _quoted_line_breaks(batch: pa.RecordBatch) -> np.ndarray:
    """Line breaks inside the fields of each row."""
    total = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        total += pc.count_substring(column, "\n").to_numpy(zero_copy_only=False)
        carriage = pc.count_substring(column, "\r").to_numpy(zero_copy_only=False)
        if carriage.any():
            total += carriage - pc.count_substring(column, "\r\n").to_numpy(zero_copy_only=False)
    return total


def _read_csv_rows(source: SourceFile, layout: CsvLayout, detect: bool) -> Iterator[Chunk]:
    """The csv module's reading: for files with empty lines inside (line numbers count them) or that pyarrow
    cannot read."""
    width, date_pos = layout.width, layout.positions["invoice_date"]
    with source.path.open(newline="", encoding=source.encoding) as handle:
        reader = csv.reader(handle, delimiter=layout.delimiter)
        next(reader)
        if detect:
            source.date_format = detect_date_format(
                (row[date_pos] for row in reader if len(row) == width), source.path.name
            )
            handle.seek(0)
            reader = csv.reader(handle, delimiter=layout.delimiter)
            next(reader)
        rows: list[list[str]] = []
        lines: list[int] = []
        bad: list[Reject] = []
        for row in reader:
            if len(row) == width:
                rows.append(row)
                lines.append(reader.line_num)
            elif not any(value.strip() for value in row):
                continue  # blank lines carry no data, they are not counted as read
            else:
                bad.append(("", reader.line_num, _join_raw(row), f"expected {width} fields, found {len(row)}"))
            if len(rows) >= CHUNK_LINES:
                yield _chunk_from_rows(rows, lines, "", width, layout.positions, bad)
                rows, lines, bad = [], [], []
        yield _chunk_from_rows(rows, lines, "", width, layout.positions, bad)


def read_parquet(source: SourceFile) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(source.path)
    header = parquet.schema_arrow.names
    positions, source.layout = map_columns(header, source.path.name)
    date_column = header[positions["invoice_date"]]
    date_type = parquet.schema_arrow.field(positions["invoice_date"]).type
    if pa.types.is_dictionary(date_type):
        date_type = date_type.value_type
    dates = None
    if pa.types.is_timestamp(date_type) or pa.types.is_date(date_type):
        source.date_format = None
    else:
        distinct = _Distinct()
        for batch in parquet.iter_batches(batch_size=max(CHUNK_LINES, 1), columns=[date_column]):
            distinct.add(batch.column(0))
        source.date_format, dates = _detect_dates(distinct.values(), source.path.name)
        del distinct
    names = _column_names(len(header))
    first_line = 1
    for batch in parquet.iter_batches(batch_size=max(1, min(CHUNK_LINES, PARQUET_BATCH_LINES))):
        table = pa.Table.from_batches([batch]).rename_columns(names)
        lines = np.arange(first_line, first_line + batch.num_rows, dtype=np.int64)
        first_line += batch.num_rows
        yield Chunk(table, positions, lines, dates=dates)


def read_xlsx(source: SourceFile, sheet: str | None) -> Iterator[Chunk]:
    """The rows of every sheet (or the one named). openpyxl fails on a damaged workbook with whatever its XML or
    zip reading raised: any such failure is the file's, told in one line."""
    try:
        yield from _read_xlsx(source, sheet)
    except InsidersError:
        raise
    except Exception as exc:
        raise InsidersError(f"{source.path.name}: not a readable XLSX workbook ({_one_line(exc)})") from exc


def _read_xlsx(source: SourceFile, sheet: str | None) -> Iterator[Chunk]:
    from openpyxl import load_workbook

    workbook = load_workbook(source.path, read_only=True, data_only=True)
    try:
        names = workbook.sheetnames
        if sheet is not None and sheet not in names:
            raise InsidersError(f"{source.path.name}: no sheet named {sheet!r}; sheets: {', '.join(names)}")
        for name in [sheet] if sheet else names:
            rows_iter = workbook[name].iter_rows(values_only=True)
            header = next(rows_iter, None)
            if header is None:
                continue
            positions, source.layout = map_columns(header, f"{source.path.name} [{name}]")
            date_pos = positions["invoice_date"]
            rows: list[tuple[object, ...]] = []
            lines: list[int] = []
            for excel_row, row in enumerate(rows_iter, start=2):
                if all(v is None for v in row):
                    continue
                rows.append(tuple(row[: len(header)]) + (None,) * (len(header) - len(row)))
                lines.append(excel_row)
                if len(rows) >= CHUNK_LINES:
                    yield _xlsx_chunk(source, rows, lines, name, header, positions, date_pos)
                    rows, lines = [], []
            yield _xlsx_chunk(source, rows, lines, name, header, positions, date_pos)
    finally:
        workbook.close()


def _xlsx_chunk(source: SourceFile, rows: list[tuple[object, ...]], lines: list[int], sheet: str,
                header: Sequence[object], positions: dict[str, int], date_pos: int) -> Chunk:
    text_dates = [r[date_pos] for r in rows if isinstance(r[date_pos], str)]
    if text_dates and source.date_format is None:
        # a workbook whose dates are text: the first block with text dates fixes the format for the file
        source.date_format = detect_date_format(text_dates, source.path.name)
    return _chunk_from_rows(rows, lines, sheet, len(header), positions)


# -- parsing: column-wise, with pyarrow.compute ------------------------------------------------------------

def _plain(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array, dictionary-encoded columns decoded."""
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _text(column: pa.Array) -> pa.Array:
    """Text with surrounding spaces stripped; empty text and missing values (NaN included) become null."""
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    if not _is_text(column.type):
        column = column.cast(pa.string())
    stripped = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, stripped.type), stripped)


def _numbers(column: pa.Array) -> pa.Array:
    """float64; null where the value is not a number (as pandas.to_numeric reads text, after stripping)."""
    kind = column.type
    if _numeric(kind):
        return column.cast(pa.float64())
    if pa.types.is_boolean(kind):
        return column.cast(pa.int8()).cast(pa.float64())
    if not _is_text(kind):
        return pa.nulls(len(column), pa.float64())
    text = _text(column)
    try:
        return text.cast(pa.float64())
    except pa.ArrowInvalid:
        number = pc.match_substring_regex(text, NUMBER_PATTERN)
        return pc.if_else(number, text, pa.scalar(None, text.type)).cast(pa.float64())


def _ok(mask: pa.Array) -> np.ndarray:
    """A boolean mask as numpy, null as false."""
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _integral(numbers: pa.Array, limit: float) -> np.ndarray:
    """Finite whole numbers within ±limit."""
    whole = pc.and_(pc.is_finite(numbers), pc.equal(pc.floor(numbers), numbers))
    return _ok(pc.and_(whole, pc.less_equal(pc.abs(numbers), limit)))


def _customer_ids(column: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Customer ids (int64 or float64, null where missing) and where one is given but is not an integer."""
    kind = column.type
    if pa.types.is_integer(kind):
        return column, np.zeros(len(column), dtype=bool)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        numbers = column.cast(pa.float64())
        numbers = pc.if_else(pc.is_nan(numbers), pa.scalar(None, pa.float64()), numbers)
        given = _ok(pc.is_valid(numbers))
    else:
        text = _text(column)
        given, numbers = _ok(pc.is_valid(text)), _numbers(text)
    return numbers, given & ~_integral(numbers, INT64_LIMIT)


def _dates(column: pa.Array, date_format: str | None, lookup: DateLookup | None = None) -> tuple[pa.Array, str]:
    """timestamp[s] (seconds, as before), null where the value is not a date; and what a refused one is told."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = pc.local_timestamp(column)
        return column.cast(pa.timestamp("s"), safe=False), "is not a date"
    if pa.types.is_date(kind):
        return column.cast(pa.timestamp("s")), "is not a date"
    if not _is_text(kind):
        column = column.cast(pa.string())
    message = f"does not match {date_format}" if date_format is not None else "is not a date"
    if lookup is not None and lookup.date_format == date_format:
        return lookup(column), message
    # few distinct texts (at most one per minute of the file's period): each is parsed once, by pandas
    encoded = pc.dictionary_encode(column)
    parsed = _parse_date_texts(encoded.dictionary.to_numpy(zero_copy_only=False), date_format)
    values = pa.array(parsed, from_pandas=True).cast(pa.timestamp("s"), safe=False)
    return values.take(encoded.indices), message


def _parse_date_texts(texts: np.ndarray, date_format: str | None) -> pd.Series:
    """Texts stripped and parsed as dates by pandas (in `date_format` if given); NaT where they are not dates."""
    texts = pd.Series(texts, dtype=object).str.strip()
    texts = texts.where(texts != "", None)
    if date_format is not None:
        parsed = pd.to_datetime(texts, format=date_format, errors="coerce")
    else:
        parsed = pd.to_datetime(texts, errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed


def _shown(value: object) -> str:
    return "'" + str(value)[:40] + "'"


def parse_chunk(chunk: Chunk, date_format: str | None) -> tuple[pa.Table, list[Reject]]:
    """Typed lines ready for COPY (LINES_SCHEMA), and the refused ones with their reasons."""
    table, positions = chunk.table, chunk.positions
    n = table.num_rows
    if n == 0:
        return LINES_SCHEMA.empty_table(), list(chunk.pre_rejected)

    def column(name: str) -> pa.Array:
        return _plain(table.column(positions[name]))

    invoice_no = _text(column("invoice_no"))
    stock_code = _text(column("stock_code"))
    quantity = _numbers(column("quantity"))
    unit_price = _numbers(column("unit_price"))
    customer, bad_customer = _customer_ids(column("customer_id"))
    invoiced_at, date_message = _dates(column("invoice_date"), date_format, chunk.dates)

    refusals = [
        (~_ok(pc.is_valid(invoice_no)), "invoice_no", "missing invoice number"),
        (~_ok(pc.is_valid(stock_code)), "stock_code", "missing stock code"),
        (~_integral(quantity, INT32_MAX), "quantity", "quantity {} is not an integer"),
        (~_ok(pc.is_finite(unit_price)), "unit_price", "unit price {} is not a number"),
        (bad_customer, "customer_id", "customer id {} is not an integer"),
        (~_ok(pc.is_valid(invoiced_at)), "invoice_date", "invoice date {} " + date_message),
        (_ok(pc.or_(pc.less(invoiced_at, FIRST_DATE), pc.greater_equal(invoiced_at, END_DATE))), "invoice_date",
         "invoice date {} is not within the years 1 to 9999"),
    ]
    refused = np.logical_or.reduce([mask for mask, _, _ in refusals])
    good = pa.Table.from_arrays([
        pa.nulls(n, pa.string()).fill_null(chunk.sheet), pa.array(chunk.lines, pa.int64()), invoice_no, stock_code,
        _text(column("description")), quantity, invoiced_at, unit_price, customer, _text(column("country")),
    ], names=list(RAW_COLUMNS))
    rejected = list(chunk.pre_rejected)
    if refused.any():
        good = good.filter(pa.array(~refused))
        rows = np.flatnonzero(refused)
        original = table.take(pa.array(rows)).to_pandas()
        for row, values in zip(rows, original.itertuples(index=False, name=None), strict=True):
            reasons = [message.format(_shown(values[positions[name]]))
                       for mask, name, message in refusals if mask[row]]
            rejected.append((chunk.sheet, int(chunk.lines[row]), _join_raw(values), "; ".join(reasons)))
    return good.cast(LINES_SCHEMA), rejected


# -- writing -----------------------------------------------------------------------------------------------

def _copy_blocks(table: pa.Table) -> Iterator[pa.Table]:
    """The table in slices of COPY_BLOCK_BYTES at most, or of one line (a block's rows are joined into one binary
    array): halved until they fit, as large lines may sit together."""
    if table.nbytes <= COPY_BLOCK_BYTES or table.num_rows == 1:
        yield table
        return
    half = table.num_rows // 2
    yield from _copy_blocks(table.slice(0, half))
    yield from _copy_blocks(table.slice(half))


def _copy_rows(good: pa.Table, batch_id: int) -> pa.Buffer:
    """The lines as binary COPY rows, in COPY_LINES's column order."""

    def column(name: str) -> pa.Array:
        return _plain(good.column(name))

    return copy_binary.rows([
        copy_binary.constant_integers(batch_id, good.num_rows, ">i8"), copy_binary.texts(column("source_sheet")),
        copy_binary.integers(column("source_line"), ">i8"), copy_binary.texts(column("invoice_no")),
        copy_binary.texts(column("stock_code")), copy_binary.texts(column("description")),
        copy_binary.integers(column("quantity"), ">i4"), copy_binary.timestamps(column("invoiced_at")),
        copy_binary.numerics(column("unit_price").to_numpy(zero_copy_only=False)),
        copy_binary.integers(column("customer_id"), ">i8"), copy_binary.texts(column("country")),
        copy_binary.integers(column("line_occurrence"), ">i4"),
    ])


class _LinesWriter(LibpqWriter):
    """Writes the lines' COPY from a thread of its own: tables of checked lines are numbered (each line's
    occurrence of its natural key, in the caller's thread: measured faster than in the writer's, which then had
    the GIL to share with both), queued (at most COPY_QUEUE_DEPTH), turned into binary COPY rows and sent there, so that
    the next block is read and checked while the previous one is written out and stored by the server. It notes
    the period the lines cover and their sheets, for the duplicates' search."""

    def __init__(self, cursor: psycopg.Cursor, batch_id: int):
        super().__init__(cursor)
        self.batch_id = batch_id
        self.occurrences = OccurrenceCounter()
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.sheets: set[str] = set()
        self._tables: queue.Queue[pa.Table | None] = queue.Queue(maxsize=COPY_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _send(self) -> None:
        try:
            while (table := self._tables.get()) is not None:
                for block in _copy_blocks(table):
                    self.write(memoryview(_copy_rows(block, self.batch_id)))
        except BaseException as exc:  # handed to the main thread
            self._error = exc
            while self._tables.get() is not None:
                pass

    def _numbered(self, table: pa.Table) -> pa.Table:
        sheet = table.column("source_sheet")[0].as_py()
        self.sheets.add(sheet)
        span = pc.min_max(table.column("invoiced_at")).as_py()
        self.first = span["min"] if self.first is None else min(self.first, span["min"])
        self.last = span["max"] if self.last is None else max(self.last, span["max"])
        return table.append_column("line_occurrence", self.occurrences.number(table, sheet))

    def put(self, table: pa.Table) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._send, name="insiders-copy", daemon=True)
            self._thread.start()
        self._tables.put(self._numbered(table))

    def finish(self, exc: BaseException | None = None) -> None:
        if self._thread is not None:
            self._tables.put(None)
            self._thread.join()
            self._thread = None
        if exc is None and self._error is None:
            self.write(copy_binary.TRAILER)  # the signature went first, through the Copy (see _load_file)
        # the COPY is ended in any case; with an error, the server drops it
        super().finish(exc or self._error)
        if self._error is not None and exc is None:
            raise self._error


class _Rejects:
    """Refused lines spooled (to disk past a few MB) until the lines' COPY is done, then copied in one go."""

    def __init__(self, batch_id: int, spool: io.TextIOBase):
        self.batch_id = batch_id
        self.count = 0
        self.examples: list[str] = []
        self._spool = spool
        self._writer = csv.writer(spool, quoting=csv.QUOTE_ALL)

    def add(self, rejected: list[Reject]) -> None:
        self._writer.writerows((self.batch_id, *r) for r in rejected)
        self.count += len(rejected)
        self.examples += [f"line {line}: {reason}" for _, line, _, reason in rejected[: 5 - len(self.examples)]]

    def copy(self, cur: psycopg.Cursor) -> None:
        if not self.count:
            return
        self._spool.seek(0)
        with cur.copy(COPY_REJECTS) as copy:
            for block in iter(lambda: self._spool.read(1 << 20), ""):
                copy.write(block)


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """The raw tables the loader writes and the control tables `insiders` hands dbt its dates through."""
    db.create_tables(conn, "raw")
    db.create_tables(conn, "control")


def _reader(source: SourceFile, sheet: str | None) -> Iterator[Chunk]:
    if source.file_format == "csv":
        return read_csv(source)
    if source.file_format == "parquet":
        return read_parquet(source)
    return read_xlsx(source, sheet)


def file_format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt", ".tsv"}:
        return "csv"
    if suffix in {".xlsx", ".xlsm"}:
        return "xlsx"
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    raise InsidersError(f"{path.name}: unsupported file type {suffix or '(none)'}; use CSV, XLSX or Parquet")


def _expected_lines(source: SourceFile) -> int | None:
    """About how many lines the file holds, for the progress display: CSV lines after the header (a quoted line
    break makes it an overestimate), a Parquet file's row count; unknown for XLSX."""
    if source.file_format == "csv" and source.scan and source.scan.content_lines:
        return max(source.scan.content_lines - 1, 0)
    if source.file_format == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(source.path).metadata.num_rows
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _server(conn: psycopg.Connection) -> str:
    with contextlib.suppress(Exception):  # a broken connection may not tell
        return f"database {conn.info.dbname} on {conn.info.host}:{conn.info.port}"
    return "the database"


@contextlib.contextmanager
def _user_errors(path: Path, conn: psycopg.Connection) -> Iterator[None]:
    """Failures the user can act on (the file, the disk, the database server), as an InsidersError of one line
    naming the file or the server; anything else is a bug and keeps its traceback."""
    try:
        yield
    except InsidersError:
        raise
    except (psycopg.OperationalError, psycopg.errors.InsufficientPrivilege) as exc:
        raise InsidersError(f"{_server(conn)}: {_one_line(exc)} (loading {path.name})") from exc
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and Path(str(exc.filename)) != path else ""
        raise InsidersError(f"{path}: {exc.strerror or _one_line(exc)}{where}") from exc
    except (pa.ArrowException, zipfile.BadZipFile, EOFError, UnicodeError, csv.Error) as exc:
        raise InsidersError(f"{path.name}: cannot read the file ({_one_line(exc)})") from exc


def batch_statistics_target(table_lines: int, loaded: int, own_target: int) -> int:
    """The statistics target whose sample holds BATCH_LINES_IN_SAMPLE of a batch of `loaded` lines on average, at
    least MIN_STATISTICS_TARGET and at most the session's own target, which a table never analyzed (its size
    unknown, `table_lines` < 0) gets whole."""
    if table_lines < 0:
        return own_target
    needed = math.ceil(BATCH_LINES_IN_SAMPLE * (table_lines + loaded) / (SAMPLE_LINES_PER_TARGET * loaded))
    return min(own_target, max(MIN_STATISTICS_TARGET, needed))


def _analyze_new_batch(conn: psycopg.Connection, loaded: int) -> None:
    """Put a small batch of `loaded` lines in the statistics of batch_id, from a sample sized to it. The target is
    set back afterwards: set for the transaction only, it would otherwise hold until a caller's own transaction
    ends (if the analyze fails, the transaction's rollback undoes it)."""
    table_lines, own_target = conn.execute(
        "select reltuples::bigint, current_setting('default_statistics_target')"
        " from pg_class where oid = 'invoice_lines'::regclass").fetchone()
    target = batch_statistics_target(table_lines, loaded, int(own_target))
    conn.execute("select set_config('default_statistics_target', %s, true)", (str(target),))
    conn.execute("analyze invoice_lines (batch_id)")
    conn.execute("select set_config('default_statistics_target', %s, true)", (own_target,))


def _lock_out_readers(conn: psycopg.Connection) -> bool:
    """Whether the lines' table could be locked against readers too, without waiting for any.

    The very first lines go into the empty table made anew in the load's transaction (truncated): COPY then stores
    them frozen (their first reader need not set every row's hint bits, which wrote the whole table a second time)
    and, on a server at wal_level minimal (the embedded one), without writing them to the WAL as well. Readers of
    the empty table wait for the load; one already reading it (a session left open) is not waited for: the lines
    are then copied as any later load's. Read committed only: a snapshot taken before another load committed would
    see an empty table that is not."""
    try:
        with conn.transaction():
            conn.execute("lock table invoice_lines in access exclusive mode nowait")
    except psycopg.errors.LockNotAvailable:
        log.info("raw.invoice_lines is being read; the first lines are copied without making the table anew")
        return False
    return True


def _drop_held_lines(cur: psycopg.Cursor, lines: _LinesWriter, held_before: bool) -> tuple[int, bool]:
    """Complete the occurrences the client could not number alone, then delete the batch's lines already held
    (by another batch, or by an earlier sheet of this one): how many were deleted, and whether the table's
    statistics were refreshed on the way."""
    occurrences, batch = lines.occurrences, {"batch_id": lines.batch_id, "first": lines.first, "last": lines.last}
    renumber = occurrences.renumber_all or bool(occurrences.unresolved)
    # a first load, or a period no other batch covers (a new day): nothing to compare
    compare = len(lines.sheets) > 1 or (held_before and cur.execute(HELD_IN_PERIOD, batch).fetchone()[0])
    if not (renumber or compare):
        return 0, False
    # without the batch in the statistics the planner takes it for a few lines and loops over it
    cur.execute("analyze invoice_lines")
    if occurrences.renumber_all:
        cur.execute(RENUMBER_BATCH, batch)
    elif occurrences.unresolved:
        sheets, invoices = zip(*sorted(occurrences.unresolved), strict=True)
        cur.execute(RENUMBER_INVOICES, {**batch, "sheets": list(sheets), "invoices": list(invoices)})
    return (cur.execute(DELETE_HELD_LINES, batch).rowcount if compare else 0), True


def load_file(conn: psycopg.Connection, path: Path, *, sheet: str | None = None, replace: bool = False,
              progress: bool = False) -> LoadResult:
    """Load one file in one transaction; a file whose content is already loaded is skipped unless `replace`."""
    if path.is_dir():
        raise InsidersError(f"{path}: is a directory, not a file")
    if not path.exists():
        raise InsidersError(f"{path}: no such file")
    with _user_errors(path, conn):
        if path.stat().st_size == 0:
            raise InsidersError(f"{path}: the file is empty")
        return _load_file(conn, path, sheet=sheet, replace=replace, progress=progress)


def _load_file(conn: psycopg.Connection, path: Path, *, sheet: str | None, replace: bool,
               progress: bool) -> LoadResult:
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    source = SourceFile(path=path.resolve(), file_format=file_format_of(path))
    source.scan = scan_file(path, lines=source.file_format == "csv")
    sha256 = source.scan.sha256
    if source.file_format == "csv":
        source.encoding = source.scan.encoding
    sheet_selection = sheet or ""
    with conn.transaction():
        # every text of the load (file names, sheets, the lines: a binary COPY reads text fields in the session's
        # encoding) goes in UTF-8, which a server of one's own may not default to; until the transaction ends
        conn.execute("select set_config('client_encoding', 'UTF8', true)")
        ensure_raw_schema(conn)
        existing = conn.execute(
            "select batch_id, lines_read, lines_loaded, lines_rejected from load_batches"
            " where file_sha256 = %s and sheet_selection = %s for update",
            (sha256, sheet_selection),
        ).fetchone()
        if existing and not replace:
            batch_id, loaded = existing[0], existing[2]
            log.info("%s: already loaded as batch %d (%s lines); loaded 0 — use --replace to reload",
                     path.name, batch_id, f"{loaded:,}")
            return LoadResult(path, batch_id, 0, 0, 0, already_loaded=True,
                              seconds=time.perf_counter() - started)
        if existing:  # --replace: the batch keeps its id; its lines and rejects go with the old row
            for table in ("invoice_lines", "rejected_invoice_lines", "load_batches"):
                conn.execute(f"delete from {table} where batch_id = %s", (existing[0],))
        batch_id = conn.execute(
            "insert into load_batches (batch_id, source_file, source_path, file_sha256, sheet_selection,"
            " file_format, column_layout, lines_read, lines_loaded, lines_rejected, started_at, loaded_at)"
            " values (coalesce(%s, nextval(pg_get_serial_sequence('load_batches', 'batch_id'))),"
            " %s, %s, %s, %s, %s, '', 0, 0, 0, %s, %s) returning batch_id",
            (existing[0] if existing else None, path.name, str(source.path), sha256, sheet_selection,
             source.file_format, started_at, started_at),
        ).fetchone()[0]
        # loads take turns on the lines (the commands' writer lock aside): the duplicates' search below must see
        # every line loaded before it, and no other load may add one until this one commits; readers go on (but
        # for the very first lines: _lock_out_readers)
        conn.execute("lock table invoice_lines in share row exclusive mode")
        held_before, may_truncate = conn.execute(
            "select exists (select 1 from invoice_lines), has_table_privilege('invoice_lines', 'truncate')"
            " and current_setting('transaction_isolation') = 'read committed'"
        ).fetchone()
        fresh = not held_before and not existing and may_truncate and _lock_out_readers(conn)
        if fresh:
            conn.execute("truncate invoice_lines")
        staged = 0
        with (conn.cursor() as cur,
              tempfile.SpooledTemporaryFile(max_size=REJECT_SPOOL_BYTES, mode="w+", encoding="utf-8",
                                            newline="") as spool):
            rejects = _Rejects(batch_id, spool)
            lines = _LinesWriter(cur, batch_id)
            shown = track(f"load {path.name}", _expected_lines(source)) if progress else nullcontext(None)
            with cur.copy(COPY_FRESH_LINES if fresh else COPY_LINES, writer=lines) as copy, shown as tracker:
                # through the Copy, which then knows the data carries its own signature; the writer sends the rest
                copy.write(copy_binary.SIGNATURE)
                for chunk in _reader(source, sheet):
                    good, bad = parse_chunk(chunk, source.date_format)
                    if good.num_rows:
                        lines.put(good)
                    staged += good.num_rows
                    rejects.add(bad)
                    if tracker is not None:
                        tracker.update(staged + rejects.count)
            rejects.copy(cur)
            deleted, analyzed = _drop_held_lines(cur, lines, held_before) if staged else (0, False)
            loaded = staged - deleted
        duplicate = staged - loaded
        rejected, examples = rejects.count, rejects.examples
        conn.execute(
            "update load_batches set column_layout = %s, text_encoding = %s, date_format = %s, lines_read = %s,"
            " lines_loaded = %s, lines_duplicate = %s, lines_rejected = %s, first_invoiced_at = %s,"
            " last_invoiced_at = %s, loaded_at = clock_timestamp() where batch_id = %s",
            (source.layout, source.encoding, source.date_format, staged + rejected, loaded, duplicate, rejected,
             lines.first, lines.last, batch_id),
        )
        if loaded >= ANALYZE_MIN_LINES and not analyzed:
            conn.execute("analyze invoice_lines")  # statistics for the planner, before dbt reads the lines
        elif loaded and not analyzed:
            # a small batch (a new day) is missing from the statistics, so the planner takes it for one line and
            # nests loops over it (a day's relationship test grew with the square of its lines); every build
            # reads a new batch by its id, and sampling that column alone is the cheap part of an analyze. The
            # sample need only be large enough to hold some of the batch's lines: the default one (30,000 lines,
            # read from as many pages) took 1.2-1.4 s a day at 10 million lines
            _analyze_new_batch(conn, loaded)
    result = LoadResult(path, batch_id, staged + rejected, loaded, rejected, lines_duplicate=duplicate,
                        seconds=time.perf_counter() - started, date_format=source.date_format,
                        rejected_examples=examples)
    log.debug("%s: read %s lines, loaded %s, duplicate %s, rejected %s in %.1f s (batch %d%s)", path.name,
             f"{result.lines_read:,}", f"{loaded:,}", f"{duplicate:,}", f"{rejected:,}", result.seconds, batch_id,
             f", {'replaced' if existing else 'new'}")
    for example in examples:
        log.warning("%s: rejected %s", path.name, example)
    if rejected > len(examples):
        log.warning("%s: %s more rejected lines in raw.rejected_invoice_lines (batch_id = %d)", path.name,
                    f"{rejected - len(examples):,}", batch_id)
    return result
