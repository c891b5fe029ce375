"""`insiders load`: invoice files (CSV, XLSX, Parquet) into raw.invoice_lines with COPY, one transaction per file.

Every line read is either loaded or kept in raw.rejected_invoice_lines with its reason, so read = loaded + rejected.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from .errors import InsidersError

log = logging.getLogger(__name__)

CHUNK_LINES = 200_000

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


@dataclass
class LoadResult:
    path: Path
    batch_id: int
    lines_read: int
    lines_loaded: int
    lines_rejected: int
    already_loaded: bool = False
    seconds: float = 0.0
    date_format: str | None = None
    rejected_examples: list[str] = field(default_factory=list)


@dataclass
class Chunk:
    """A block of lines as read: canonical columns, the fields as read (for rejects), lines refused early."""

    frame: pd.DataFrame  # canonical columns + source_sheet, source_line
    original: pd.DataFrame  # every field as read, by position; kept out of frame.attrs, which pandas deep-copies
    pre_rejected: pd.DataFrame


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
    texts = pd.Series(pd.unique(pd.Series(list(values), dtype=object).dropna()))
    if texts.empty:
        return None
    if all(isinstance(v, (datetime, pd.Timestamp, np.datetime64)) for v in texts[:1000]):
        return None
    texts = texts.astype(str).str.strip()
    texts = texts[texts != ""]
    best, best_parsed = None, 0
    for fmt in DATE_FORMATS:
        parsed = int(pd.to_datetime(texts, format=fmt, errors="coerce").notna().sum())
        if parsed > best_parsed:
            best, best_parsed = fmt, parsed
        if parsed == len(texts):
            break
    if best is None:
        examples = ", ".join(repr(v) for v in texts[:3])
        raise InsidersError(f"{source}: no known date format matches column InvoiceDate (examples: {examples})")
    log.info("%s: date format %s detected (parses %s of %s distinct values)", source, best,
             f"{best_parsed:,}", f"{len(texts):,}")
    return best


def scan_bytes(path: Path) -> tuple[str, str]:
    """SHA-256 of the file and its text encoding, in one pass: UTF-8 (with or without BOM) when the whole file
    decodes as such, else Latin-1, which decodes anything."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    with path.open("rb") as handle:
        first = True
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            if first:
                bom, first = block.startswith(codecs.BOM_UTF8), False
            if utf8:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    encoding = ("utf-8-sig" if not first and bom else "utf-8") if utf8 else "latin-1"
    return digest.hexdigest(), encoding


def _join_raw(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})


def _frame_from_rows(rows: list[Sequence[object]], lines: list[int], sheet: str, header: Sequence[object],
                     positions: dict[str, int]) -> Chunk:
    frame = pd.DataFrame(rows, columns=range(len(header)), dtype=object)
    out = pd.DataFrame({canonical: frame[pos] for canonical, pos in positions.items()})
    out["source_sheet"] = sheet
    out["source_line"] = lines
    return Chunk(out, frame, _empty_rejects())


# -- readers: each yields chunks of canonical columns ------------------------------------------------------

@dataclass
class SourceFile:
    path: Path
    file_format: str
    layout: str = ""
    encoding: str | None = None
    date_format: str | None = None


def _csv_dialect(sample: str) -> str:
    header = sample.splitlines()[0] if sample else ""
    return max((",", ";", "\t", "|"), key=header.count)


def read_csv(source: SourceFile) -> Iterator[Chunk]:
    with source.path.open(newline="", encoding=source.encoding) as handle:
        delimiter = _csv_dialect(handle.read(65536))
        handle.seek(0)
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise InsidersError(f"{source.path.name}: the file is empty")
        positions, source.layout = map_columns(header, source.path.name)
        date_pos = positions["invoice_date"]
        # a first pass over the dates alone: the format is chosen once, on every date of the file
        source.date_format = detect_date_format(
            (row[date_pos] for row in reader if len(row) == len(header)), source.path.name
        )
        handle.seek(0)
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader)
        rows: list[list[str]] = []
        lines: list[int] = []
        bad: list[tuple[str, int, str, str]] = []
        for row in reader:
            if len(row) == len(header):
                rows.append(row)
                lines.append(reader.line_num)
            elif not any(field.strip() for field in row):
                continue  # blank lines carry no data, they are not counted as read
            else:
                bad.append(("", reader.line_num, _join_raw(row),
                            f"expected {len(header)} fields, found {len(row)}"))
            if len(rows) >= CHUNK_LINES:
                chunk = _frame_from_rows(rows, lines, "", header, positions)
                chunk.pre_rejected = pd.DataFrame(bad, columns=list(REJECT_COLUMNS))
                yield chunk
                rows, lines, bad = [], [], []
        chunk = _frame_from_rows(rows, lines, "", header, positions)
        chunk.pre_rejected = pd.DataFrame(bad, columns=list(REJECT_COLUMNS))
        yield chunk


def read_parquet(source: SourceFile) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(source.path)
    header = parquet.schema_arrow.names
    positions, source.layout = map_columns(header, source.path.name)
    date_column = header[positions["invoice_date"]]
    dates = parquet.read(columns=[date_column]).column(0)
    if dates.type.__class__.__name__ == "TimestampType":
        source.date_format = None
    else:
        source.date_format = detect_date_format(dates.unique().to_pylist(), source.path.name)
    first_line = 1
    for batch in parquet.iter_batches(batch_size=CHUNK_LINES):
        frame = batch.to_pandas()
        out = pd.DataFrame({canonical: frame.iloc[:, pos] for canonical, pos in positions.items()})
        out["source_sheet"] = ""
        out["source_line"] = np.arange(first_line, first_line + len(frame))
        frame.columns = range(frame.shape[1])
        first_line += len(frame)
        yield Chunk(out, frame, _empty_rejects())


def read_xlsx(source: SourceFile, sheet: str | None) -> Iterator[Chunk]:
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
    return _frame_from_rows(rows, lines, sheet, header, positions)


# -- parsing -----------------------------------------------------------------------------------------------

def _text(series: pd.Series) -> pd.Series:
    """Text with surrounding spaces stripped; empty text and missing values become None."""
    values = series.astype(object)
    missing = values.isna().to_numpy()
    stripped = values.where(missing, values.astype(str).str.strip())
    return stripped.where(~missing & (stripped != ""), None)


def _numeric_text(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series if series.dtype != object else series.astype("string").str.strip(),
                         errors="coerce")


def parse_chunk(chunk: Chunk, date_format: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed lines ready for COPY, and the refused ones with their reasons."""
    frame = chunk.frame
    n = len(frame)
    reasons = pd.Series([""] * n, index=frame.index, dtype=object)

    def refuse(mask: pd.Series, message: pd.Series | str) -> None:
        mask = mask.fillna(False).astype(bool)
        if mask.any():
            text = message[mask] if isinstance(message, pd.Series) else message
            reasons[mask] = reasons[mask] + np.where(reasons[mask] == "", "", "; ") + text

    def shown(column: str) -> pd.Series:
        return "'" + frame[column].astype(str).str.slice(0, 40) + "'"

    invoice_no = _text(frame["invoice_no"])
    stock_code = _text(frame["stock_code"])
    refuse(invoice_no.isna(), "missing invoice number")
    refuse(stock_code.isna(), "missing stock code")

    quantity = _numeric_text(frame["quantity"])
    refuse(quantity.isna() | (quantity % 1 != 0) | (quantity.abs() > INT32_MAX),
           "quantity " + shown("quantity") + " is not an integer")

    unit_price = _numeric_text(frame["unit_price"]).astype(float)
    refuse(~np.isfinite(unit_price), "unit price " + shown("unit_price") + " is not a number")

    customer_text = _text(frame["customer_id"])
    customer = pd.to_numeric(customer_text, errors="coerce")
    refuse(customer_text.notna() & (customer.isna() | (customer % 1 != 0)),
           "customer id " + shown("customer_id") + " is not an integer")

    raw_dates = frame["invoice_date"]
    if date_format is not None:
        invoiced_at = pd.to_datetime(_text(raw_dates), format=date_format, errors="coerce")
        refuse(invoiced_at.isna(), "invoice date " + shown("invoice_date") + f" does not match {date_format}")
    else:
        invoiced_at = pd.to_datetime(raw_dates, errors="coerce")
        refuse(invoiced_at.isna(), "invoice date " + shown("invoice_date") + " is not a date")

    rejected_mask = reasons != ""
    good = pd.DataFrame({
        "source_sheet": frame["source_sheet"],
        "source_line": frame["source_line"],
        "invoice_no": invoice_no,
        "stock_code": stock_code,
        "description": _text(frame["description"]),
        "quantity": quantity.astype("Float64").round().astype("Int64") if not rejected_mask.all() else quantity,
        "invoiced_at": invoiced_at,
        "unit_price": unit_price,
        "customer_id": customer.astype("Float64").round().astype("Int64") if customer.notna().any() else customer,
        "country": _text(frame["country"]),
    })[~rejected_mask]

    if rejected_mask.any():
        original = chunk.original.loc[rejected_mask.to_numpy()]
        rejected = pd.DataFrame({
            "source_sheet": frame.loc[rejected_mask, "source_sheet"],
            "source_line": frame.loc[rejected_mask, "source_line"],
            "raw_text": [_join_raw(row) for row in original.itertuples(index=False)],
            "reason": reasons[rejected_mask],
        })
        rejected = pd.concat([chunk.pre_rejected, rejected], ignore_index=True)
    else:
        rejected = chunk.pre_rejected
    return good, rejected


# -- writing -----------------------------------------------------------------------------------------------

def _copy_frame(cur: psycopg.Cursor, table: str, frame: pd.DataFrame, batch_id: int) -> None:
    if frame.empty:
        return
    frame = frame.assign(batch_id=batch_id)
    columns = ["batch_id", *[c for c in frame.columns if c != "batch_id"]]
    buffer = io.StringIO()
    # \\N marks NULL so that an empty sheet name stays an empty string
    frame[columns].to_csv(buffer, header=False, index=False, date_format="%Y-%m-%d %H:%M:%S", na_rep="\\N")
    with cur.copy(f"copy {table} ({', '.join(columns)}) from stdin (format csv, null '\\N')") as copy:
        copy.write(buffer.getvalue())


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    ddl = resources.files("insiders").joinpath("sql/raw_schema.sql").read_text()
    conn.execute(ddl)


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


def load_file(conn: psycopg.Connection, path: Path, *, sheet: str | None = None, replace: bool = False,
              progress: bool = False) -> LoadResult:
    """Load one file in one transaction; a file whose content is already loaded is skipped unless `replace`."""
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    if not path.is_file():
        raise InsidersError(f"{path}: no such file")
    source = SourceFile(path=path.resolve(), file_format=file_format_of(path))
    sha256, encoding = scan_bytes(path)
    if source.file_format == "csv":
        source.encoding = encoding
    sheet_selection = sheet or ""
    with conn.transaction():
        ensure_raw_schema(conn)
        existing = conn.execute(
            "select batch_id, lines_read, lines_loaded, lines_rejected from raw.load_batches"
            " where file_sha256 = %s and sheet_selection = %s for update",
            (sha256, sheet_selection),
        ).fetchone()
        if existing and not replace:
            batch_id, loaded = existing[0], existing[2]
            log.info("%s: already loaded as batch %d (%s lines); loaded 0 — use --replace to reload",
                     path.name, batch_id, f"{loaded:,}")
            return LoadResult(path, batch_id, 0, 0, 0, already_loaded=True,
                              seconds=time.perf_counter() - started)
        if existing:  # --replace: the batch keeps its id, its lines and rejects go with the old row
            conn.execute("delete from raw.load_batches where batch_id = %s", (existing[0],))
        batch_id = conn.execute(
            "insert into raw.load_batches (batch_id, source_file, source_path, file_sha256, sheet_selection,"
            " file_format, column_layout, lines_read, lines_loaded, lines_rejected, started_at, loaded_at)"
            " values (coalesce(%s, nextval(pg_get_serial_sequence('raw.load_batches', 'batch_id'))),"
            " %s, %s, %s, %s, %s, '', 0, 0, 0, %s, %s) returning batch_id",
            (existing[0] if existing else None, path.name, str(source.path), sha256, sheet_selection,
             source.file_format, started_at, started_at),
        ).fetchone()[0]
        loaded = rejected = 0
        examples: list[str] = []
        with conn.cursor() as cur:
            for chunk in _reader(source, sheet):
                good, bad = parse_chunk(chunk, source.date_format)
                _copy_frame(cur, "raw.invoice_lines", good, batch_id)
                _copy_frame(cur, "raw.rejected_invoice_lines", bad, batch_id)
                loaded += len(good)
                rejected += len(bad)
                if len(examples) < 5:
                    examples += [f"line {r.source_line}: {r.reason}" for r in bad.head(5 - len(examples)).itertuples()]
                if progress:
                    log.info("%s: %s lines read", path.name, f"{loaded + rejected:,}")
        conn.execute(
            "update raw.load_batches set column_layout = %s, text_encoding = %s, date_format = %s, lines_read = %s,"
            " lines_loaded = %s, lines_rejected = %s, loaded_at = clock_timestamp() where batch_id = %s",
            (source.layout, source.encoding, source.date_format, loaded + rejected, loaded, rejected, batch_id),
        )
    result = LoadResult(path, batch_id, loaded + rejected, loaded, rejected, seconds=time.perf_counter() - started,
                        date_format=source.date_format, rejected_examples=examples)
    log.info("%s: read %s lines, loaded %s, rejected %s in %.1f s (batch %d%s)", path.name,
             f"{result.lines_read:,}", f"{loaded:,}", f"{rejected:,}", result.seconds, batch_id,
             f", {'replaced' if existing else 'new'}")
    for example in examples:
        log.warning("%s: rejected %s", path.name, example)
    if rejected > len(examples):
        log.warning("%s: %s more rejected lines in raw.rejected_invoice_lines (batch_id = %d)", path.name,
                    f"{rejected - len(examples):,}", batch_id)
    return result
