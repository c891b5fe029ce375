from __future__ import annotations

import csv
import io
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from insiders import load as load_module
from insiders.errors import InsidersError
from insiders.load import detect_date_format, load_file

UCI_HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
II_HEADER = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]
ROWS = [
    ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "12/1/2010 8:26", 2.55, 17850, "United Kingdom"],
    ["536366", "22633", "HAND WARMER UNION JACK", 6, "12/1/2010 8:28", 1.85, 17850, "United Kingdom"],
    ["536367", "84879", "ASSORTED COLOUR BIRD ORNAMENT", 32, "12/13/2010 8:34", 1.69, 13047, "France"],
    ["C536379", "D", "Discount", -1, "12/14/2010 9:41", 27.5, 14527, "United Kingdom"],
    ["536380", "22961", "JAM MAKING SET PRINTED CAFÉ", 24, "12/15/2010 9:41", 1.45, None, "Côte d'Ivoire"],
]


def write_csv(path: Path, header: list[str], rows: list[list[object]], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    return path


def raw_lines(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "select invoice_no, stock_code, description, quantity, invoiced_at::text, unit_price::text, customer_id,"
        " country from raw.invoice_lines order by source_sheet, source_line"
    ).fetchall()


EXPECTED = [
    ("536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-12-01 08:26:00", "2.55", 17850,
     "United Kingdom"),
    ("536366", "22633", "HAND WARMER UNION JACK", 6, "2010-12-01 08:28:00", "1.85", 17850, "United Kingdom"),
    ("536367", "84879", "ASSORTED COLOUR BIRD ORNAMENT", 32, "2010-12-13 08:34:00", "1.69", 13047, "France"),
    ("C536379", "D", "Discount", -1, "2010-12-14 09:41:00", "27.5", 14527, "United Kingdom"),
    ("536380", "22961", "JAM MAKING SET PRINTED CAFÉ", 24, "2010-12-15 09:41:00", "1.45", None, "Côte d'Ivoire"),
]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1"])
def test_csv_in_each_encoding_loads_the_same_lines(tmp_path, conn, encoding):
    path = write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS, encoding=encoding)
    result = load_file(conn, path)
    assert (result.lines_read, result.lines_loaded, result.lines_rejected) == (5, 5, 0)
    assert raw_lines(conn) == EXPECTED
    assert conn.execute("select text_encoding from raw.load_batches").fetchone()[0] == encoding


def test_parquet_as_shipped_with_lower_case_columns_and_float_ids(tmp_path, conn):
    frame = pd.DataFrame(ROWS, columns=[c.lower() for c in UCI_HEADER])
    frame["customerid"] = frame["customerid"].astype(float)
    frame.to_parquet(tmp_path / "lines.parquet")
    result = load_file(conn, tmp_path / "lines.parquet")
    assert result.lines_loaded == 5
    assert raw_lines(conn) == EXPECTED


def test_xlsx_every_sheet_or_the_one_named(tmp_path, conn):
    path = tmp_path / "online_retail_II.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame(ROWS[:3], columns=II_HEADER).to_excel(writer, sheet_name="Year 2009-2010", index=False)
        pd.DataFrame(ROWS[3:], columns=II_HEADER).to_excel(writer, sheet_name="Year 2010-2011", index=False)
    result = load_file(conn, path)
    assert result.lines_loaded == 5
    assert raw_lines(conn) == EXPECTED
    sheets = conn.execute("select source_sheet, count(*) from raw.invoice_lines group by 1 order by 1").fetchall()
    assert sheets == [("Year 2009-2010", 3), ("Year 2010-2011", 2)]
    assert conn.execute("select column_layout from raw.load_batches").fetchone()[0] == "online_retail_ii"
    only_one = load_file(conn, path, sheet="Year 2010-2011")
    # another selection of the same workbook is a load of its own, whose lines are all held already
    assert (only_one.lines_loaded, only_one.lines_duplicate, only_one.already_loaded) == (0, 2, False)
    with pytest.raises(InsidersError, match="no sheet named 'Nope'"):
        load_file(conn, path, sheet="Nope")


@pytest.mark.parametrize(
    "header",
    [
        ["invoice_no", "stock_code", "description", "quantity", "invoice_date", "unit_price", "customer_id", "country"],
        [c.lower() for c in II_HEADER],
        ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer_ID", "Country"],
    ],
)
def test_known_column_spellings_map_to_one_schema(tmp_path, conn, header):
    path = write_csv(tmp_path / "lines.csv", header, ROWS)
    assert load_file(conn, path).lines_loaded == 5
    assert raw_lines(conn) == EXPECTED


def test_stray_index_column_is_ignored(tmp_path, conn):
    pd.DataFrame(ROWS, columns=UCI_HEADER).to_csv(tmp_path / "with_index.csv", index=True)
    assert load_file(conn, tmp_path / "with_index.csv").lines_loaded == 5
    assert raw_lines(conn) == EXPECTED


def test_missing_quantity_column_is_named_and_nothing_is_loaded(tmp_path, conn):
    header = [c for c in UCI_HEADER if c != "Quantity"]
    rows = [[v for i, v in enumerate(r) if i != 3] for r in ROWS]
    path = write_csv(tmp_path / "no_quantity.csv", header, rows)
    with pytest.raises(InsidersError) as error:
        load_file(conn, path)
    message = str(error.value)
    assert "no_quantity.csv" in message and "missing column Quantity" in message
    assert "'InvoiceNo'" in message and "'Country'" in message  # the columns it found
    assert conn.execute("select to_regclass('raw.load_batches')").fetchone()[0] is None


@pytest.mark.parametrize(
    ("dates", "expected_format", "first"),
    [
        (["12/1/2010 8:26", "12/13/2010 17:05"], "%m/%d/%Y %H:%M", "2010-12-01 08:26:00"),
        (["2010-12-01 08:26:00", "2010-12-13 17:05:00"], "%Y-%m-%d %H:%M:%S", "2010-12-01 08:26:00"),
        (["29-Nov-16", "1-Dec-16"], "%d-%b-%y", "2016-11-29 00:00:00"),
        # 1/12 alone is ambiguous; 13/12 later in the file settles day-first for every line
        (["1/12/2010 8:26", "13/12/2010 9:00"], "%d/%m/%Y %H:%M", "2010-12-01 08:26:00"),
    ],
)
def test_date_format_is_detected_once_per_file(tmp_path, conn, caplog, dates, expected_format, first):
    rows = [[*ROWS[0][:4], d, *ROWS[0][5:]] for d in dates]
    path = write_csv(tmp_path / "dates.csv", UCI_HEADER, rows)
    with caplog.at_level(logging.INFO):
        result = load_file(conn, path)
    assert result.date_format == expected_format
    assert f"date format {expected_format} detected" in caplog.text
    assert conn.execute("select min(invoiced_at)::text from raw.invoice_lines").fetchone()[0] == first


def test_unknown_date_format_fails_with_examples():
    with pytest.raises(InsidersError, match=r"no known date format.*'yesterday'"):
        detect_date_format(["yesterday", "n/a"], "x.csv")


def test_garbled_lines_are_kept_with_reasons_and_the_rest_loads(tmp_path, conn):
    path = tmp_path / "garbled.csv"
    write_csv(path, UCI_HEADER, ROWS)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("536390,22111,SCOTTIE DOG HOT WATER BOTTLE,abc,12/16/2010 9:00,4.95,17850,United Kingdom\n")
        handle.write("536391,22112,CHOCOLATE HOT WATER BOTTLE,3,31/31/2010 9:00,4.95,17850,United Kingdom\n")
        handle.write("536392,truncated line\n")
        handle.write(",22113,NO INVOICE,1,12/16/2010 9:00,x,12345.5,United Kingdom\n")
    result = load_file(conn, path)
    assert (result.lines_read, result.lines_loaded, result.lines_rejected) == (9, 5, 4)
    rejected = dict(conn.execute(
        "select source_line, reason from raw.rejected_invoice_lines order by source_line").fetchall())
    assert rejected[7] == "quantity 'abc' is not an integer"
    assert rejected[8] == "invoice date '31/31/2010 9:00' does not match %m/%d/%Y %H:%M"
    assert rejected[9] == "expected 8 fields, found 2"
    assert rejected[10] == ("missing invoice number; unit price 'x' is not a number; "
                            "customer id '12345.5' is not an integer")
    raw_text = conn.execute("select raw_text from raw.rejected_invoice_lines where source_line = 9").fetchone()[0]
    assert raw_text == "536392,truncated line"
    counts = conn.execute("select lines_read, lines_loaded, lines_rejected from raw.load_batches").fetchone()
    assert counts == (9, 5, 4)


def test_same_content_loads_once_and_replace_reloads_the_batch(tmp_path, conn, caplog):
    path = write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS)
    first = load_file(conn, path)
    copy = write_csv(tmp_path / "renamed copy.csv", UCI_HEADER, ROWS)
    with caplog.at_level(logging.INFO):
        again = load_file(conn, copy)
    assert again.already_loaded and again.lines_loaded == 0 and again.batch_id == first.batch_id
    assert "already loaded as batch" in caplog.text
    assert conn.execute("select count(*) from raw.invoice_lines").fetchone()[0] == 5
    replaced = load_file(conn, path, replace=True)
    assert replaced.batch_id == first.batch_id and replaced.lines_loaded == 5
    assert conn.execute("select count(*), count(distinct batch_id) from raw.invoice_lines").fetchone() == (5, 1)
    assert conn.execute("select count(*) from raw.load_batches").fetchone()[0] == 1


def test_a_file_failing_midway_loads_nothing(tmp_path, conn, monkeypatch):
    path = write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS)
    load_module.ensure_raw_schema(conn)
    conn.commit()
    monkeypatch.setattr(load_module, "CHUNK_LINES", 2)
    calls = {"n": 0}
    real_parse = load_module.parse_chunk

    def failing_parse(chunk, date_format):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real_parse(chunk, date_format)

    monkeypatch.setattr(load_module, "parse_chunk", failing_parse)
    with pytest.raises(RuntimeError):
        load_file(conn, path)
    conn.rollback()
    assert conn.execute("select count(*) from raw.invoice_lines").fetchone()[0] == 0
    assert conn.execute("select count(*) from raw.load_batches").fetchone()[0] == 0
    monkeypatch.setattr(load_module, "parse_chunk", real_parse)
    assert load_file(conn, path).lines_loaded == 5


def test_unsupported_or_missing_files_say_so(tmp_path, conn):
    (tmp_path / "lines.json").write_text("{}")
    with pytest.raises(InsidersError, match=r"lines\.json: unsupported file type \.json"):
        load_file(conn, tmp_path / "lines.json")
    with pytest.raises(InsidersError, match="no such file"):
        load_file(conn, tmp_path / "absent.csv")


# -- pyarrow reading: line numbers, raw text, chunks -------------------------------------------------------

GOOD_FIELDS = ["85123A", "WHITE HANGING HEART", "6", "12/1/2010 8:26", "2.55", "17850", "United Kingdom"]


def expected_by_csv_module(path: Path, delimiter: str = ",", encoding: str = "utf-8") -> tuple[dict, dict]:
    """What the csv module reads (the loader's reference): invoice number -> line of each record of 8 fields, and
    line -> raw fields of each record of another length that is not blank."""
    loaded, refused = {}, {}
    with path.open(newline="", encoding=encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader)
        for row in reader:
            if len(row) == 8:
                loaded[row[0]] = reader.line_num
            elif any(v.strip() for v in row):
                refused[reader.line_num] = row
    return loaded, refused


def loaded_lines(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("select invoice_no, source_line from raw.invoice_lines").fetchall())


def refused_lines(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    rows = conn.execute("select source_line, raw_text, reason from raw.rejected_invoice_lines").fetchall()
    return {line: (raw, reason) for line, raw, reason in rows}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """pyarrow reads 4 KiB at a time and chunks hold at most 500 lines: a file of a few thousand lines crosses
    many block boundaries. Returns the size of every chunk checked."""
    monkeypatch.setattr(load_module, "CSV_BLOCK_BYTES", 4096)
    monkeypatch.setattr(load_module, "CHUNK_LINES", 500)
    sizes: list[int] = []
    real_parse = load_module.parse_chunk

    def counting_parse(chunk, date_format):
        sizes.append(chunk.table.num_rows)
        return real_parse(chunk, date_format)

    monkeypatch.setattr(load_module, "parse_chunk", counting_parse)
    return sizes


def test_wrong_field_counts_in_a_large_csv_keep_their_line_numbers_and_raw_text(tmp_path, conn, small_blocks):
    bad_lines = {2, 777, 5_000, 5_001, 12_345, 20_001}
    text = [",".join(UCI_HEADER)]
    for line in range(2, 20_002):
        if line in bad_lines:
            text.append(f"L{line},truncated line")
        elif line == 9_000:
            text.append("   ")  # blank: not counted
        elif line == 9_001:
            text.append(f'L{line},"{GOOD_FIELDS[0]}, quoted",' + ",".join(GOOD_FIELDS[1:]))
        else:
            text.append(f"L{line}," + ",".join(GOOD_FIELDS))
    path = tmp_path / "large.csv"
    path.write_text("\n".join(text) + "\n")
    result = load_file(conn, path)
    assert (result.lines_read, result.lines_rejected) == (20_000 - 1, len(bad_lines))
    assert loaded_lines(conn) == {f"L{line}": line for line in range(2, 20_002) if line not in bad_lines | {9_000}}
    assert refused_lines(conn) == {
        line: (f"L{line},truncated line", "expected 8 fields, found 2") for line in bad_lines
    }
    assert len(small_blocks) > 20_000 * 60 // 4096  # one chunk per block at least: memory stays bounded
    assert max(small_blocks) <= 500


def messy_rows(n: int) -> list[list[str]]:
    """Records of every kind: good, quoted with delimiters, quotes and line breaks, too short, too long, blank."""
    rows: list[list[str]] = []
    for i in range(n):
        fields = [f"N{i}", *GOOD_FIELDS]
        kind = i % 11
        if kind == 3:
            fields[2] = "TWO\nLINES, \"QUOTED\""
        elif kind == 5:
            fields = fields[:3]
        elif kind == 7:
            fields[2] = "THREE\r\nLINES\nHERE"
        elif kind == 8:
            fields = [*fields, "extra"]
        elif kind == 9 and i % 2:
            fields = ["", ""]
        elif kind == 10:
            fields = [f"N{i}", "short\nand broken"]
        rows.append(fields)
    return rows


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_quoted_line_breaks_keep_physical_line_numbers(tmp_path, conn, small_blocks, delimiter, newline):
    path = tmp_path / "messy.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator=newline)
        writer.writerow(UCI_HEADER)
        writer.writerows(messy_rows(3_000))
    loaded, refused = expected_by_csv_module(path, delimiter)
    result = load_file(conn, path)
    assert (result.lines_loaded, result.lines_rejected) == (len(loaded), len(refused))
    assert loaded_lines(conn) == loaded
    stored = refused_lines(conn)
    assert sorted(stored) == sorted(refused)
    assert all(reason == f"expected 8 fields, found {len(refused[line])}" for line, (_, reason) in stored.items())
    # the raw text is the record as written (the file's own delimiter and quoting)
    for line, (raw, _) in stored.items():
        assert next(csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter)) == refused[line]


def test_empty_lines_inside_the_file_are_not_counted_and_lines_keep_their_numbers(tmp_path, conn, small_blocks):
    path = tmp_path / "gaps.csv"
    body = [",".join(UCI_HEADER)]
    for i in range(2_000):
        body.append(f"N{i}," + ",".join(GOOD_FIELDS) if i % 13 else f"N{i},too short")
        if i % 97 == 0:
            body.append("")  # an empty line
    path.write_text("\n".join(body) + "\n\n\n")
    loaded, refused = expected_by_csv_module(path)
    result = load_file(conn, path)
    assert (result.lines_read, result.lines_loaded, result.lines_rejected) == (2_000, len(loaded), len(refused))
    assert loaded_lines(conn) == loaded
    assert sorted(refused_lines(conn)) == sorted(refused)


def test_trailing_empty_lines_and_no_final_line_break(tmp_path, conn):
    path = tmp_path / "tail.csv"
    rows = [",".join(UCI_HEADER), *(f"N{i}," + ",".join(GOOD_FIELDS) for i in range(3))]
    path.write_text("\n".join(rows) + "\n\n\n")
    assert load_file(conn, path).lines_read == 3
    path.write_text("\n".join(rows))
    assert load_file(conn, path).lines_read == 3
    assert loaded_lines(conn) == {"N0": 2, "N1": 3, "N2": 4}


def test_latin1_refused_line_keeps_its_text(tmp_path, conn):
    path = tmp_path / "latin.csv"
    write_csv(path, UCI_HEADER, [*ROWS, ["536381", "22962", "CAFÉ CRÈME", "douze", "12/15/2010 9:41", "1.45", "",
                                         "Côte d'Ivoire"]], encoding="latin-1")
    result = load_file(conn, path)
    assert (result.lines_loaded, result.lines_rejected) == (5, 1)
    assert refused_lines(conn) == {
        7: ("536381,22962,CAFÉ CRÈME,douze,12/15/2010 9:41,1.45,,Côte d'Ivoire", "quantity 'douze' is not an integer")
    }


@pytest.mark.parametrize(
    ("quantity", "price", "customer", "stored"),
    [
        ("6.0", "18", "17850.0", (6, "18.0", 17850)),
        (" +7 ", " 2.50 ", " 1e3 ", (7, "2.5", 1000)),
        ("-3", "0.00001", "", (-3, "0.00001", None)),
        ("1e2", "1e21", "12346", (100, "1000000000000000000000", 12346)),
    ],
)
def test_numbers_are_read_as_pandas_reads_them(tmp_path, conn, quantity, price, customer, stored):
    path = write_csv(tmp_path / "numbers.csv", UCI_HEADER,
                     [["536365", "85123A", "HEART", quantity, "12/1/2010 8:26", price, customer, "United Kingdom"]])
    assert load_file(conn, path).lines_loaded == 1
    assert conn.execute("select quantity, unit_price::text, customer_id from raw.invoice_lines").fetchone() == stored


@pytest.mark.parametrize(
    ("quantity", "price", "customer", "reason"),
    [
        ("2147483648", "1", "1", "quantity '2147483648' is not an integer"),
        ("1.5", "1", "1", "quantity '1.5' is not an integer"),
        ("1", "inf", "1", "unit price 'inf' is not a number"),
        ("1", "nan", "1", "unit price 'nan' is not a number"),
        ("1", "", "1", "unit price '' is not a number"),
        ("1", "1", "0x10", "customer id '0x10' is not an integer"),
        ("", "1,5", "1e400", "quantity '' is not an integer; unit price '1,5' is not a number; "
                             "customer id '1e400' is not an integer"),
    ],
)
def test_numbers_pandas_refuses_are_refused(tmp_path, conn, quantity, price, customer, reason):
    path = write_csv(tmp_path / "numbers.csv", UCI_HEADER,
                     [["536365", "85123A", "HEART", quantity, "12/1/2010 8:26", price, customer, "United Kingdom"]])
    assert load_file(conn, path).lines_rejected == 1
    assert [r for _, r in refused_lines(conn).values()] == [reason]


def test_parquet_native_timestamps_nulls_and_refused_rows(tmp_path, conn, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(load_module, "PARQUET_BATCH_LINES", 2)
    sizes: list[int] = []
    real_parse = load_module.parse_chunk
    monkeypatch.setattr(load_module, "parse_chunk",
                        lambda chunk, fmt: sizes.append(chunk.table.num_rows) or real_parse(chunk, fmt))
    table = pa.table({
        "Invoice": ["536365", "536366", None, "536368", "536369"],
        "StockCode": ["85123A", "22633", "84879", "22961", "22962"],
        "Description": ["HEART", None, "BIRD", "JAM", "  PADDED  "],
        "Quantity": pa.array([6, 6, 32, None, 2], pa.int32()),
        "InvoiceDate": pa.array([1291191960, 1291192080, 1292229240, 1292406060, None], pa.timestamp("s", "UTC")),
        "Price": [2.55, 1.85, 1.69, 1.45, 3.0],
        "Customer ID": pa.array([17850, None, 13047, 14527, 12346], pa.int64()),
        "Country": ["United Kingdom", "United Kingdom", "France", "", "EIRE"],
    })
    pq.write_table(table, tmp_path / "native.parquet")
    result = load_file(conn, tmp_path / "native.parquet")
    assert (result.lines_read, result.lines_loaded, result.lines_rejected, result.date_format) == (5, 2, 3, None)
    assert sizes == [2, 2, 1]
    assert conn.execute(
        "select source_line, invoice_no, description, invoiced_at::text, unit_price::text, customer_id, country"
        " from raw.invoice_lines order by source_line").fetchall() == [
        (1, "536365", "HEART", "2010-12-01 08:26:00", "2.55", 17850, "United Kingdom"),
        (2, "536366", None, "2010-12-01 08:28:00", "1.85", None, "United Kingdom"),
    ]
    # refused rows are shown as pandas shows them, as before (an integer column with a null reads as floats)
    assert refused_lines(conn) == {
        3: (",84879,BIRD,32.0,2010-12-13 08:34:00+00:00,1.69,13047,France", "missing invoice number"),
        4: ("536368,22961,JAM,nan,2010-12-15 09:41:00+00:00,1.45,14527,", "quantity 'nan' is not an integer"),
        5: ("536369,22962,  PADDED  ,2,NaT,3.0,12346,EIRE", "invoice date 'NaT' is not a date"),
    }


def test_dates_python_cannot_hold_are_refused_not_wrapped(tmp_path, conn):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # 2010, the first and last seconds of the years 1 to 9999, the year 20983, the year 249 BC, 10000-01-01
    seconds = [1291191960, -62_135_596_800, 253_402_300_799, 600_000_000_000, -70_000_000_000, 253_402_300_800]
    n = len(seconds)
    table = pa.table({
        "InvoiceNo": [f"N{i}" for i in range(n)], "StockCode": ["85123A"] * n, "Description": ["HEART"] * n,
        "Quantity": pa.array([6] * n, pa.int32()), "InvoiceDate": pa.array(seconds, pa.timestamp("s")),
        "UnitPrice": [2.55] * n, "CustomerID": pa.array([17850] * n, pa.int64()), "Country": ["France"] * n,
    })
    pq.write_table(table, tmp_path / "far.parquet")
    result = load_file(conn, tmp_path / "far.parquet")
    assert (result.lines_loaded, result.lines_rejected) == (3, 3)
    assert conn.execute("select invoiced_at::text from raw.invoice_lines order by source_line").fetchall() == [
        ("2010-12-01 08:26:00",), ("0001-01-01 00:00:00",), ("9999-12-31 23:59:59",)]
    reasons = {line: reason for line, (_, reason) in refused_lines(conn).items()}
    assert set(reasons) == {4, 5, 6}
    assert all(reason.endswith("is not within the years 1 to 9999") for reason in reasons.values())


def test_text_is_stored_as_read_whatever_the_sessions_encoding(tmp_path, conn):
    """Binary COPY reads text in the session's client_encoding; a server of one's own may default to LATIN1."""
    conn.execute("set client_encoding = 'LATIN1'")
    conn.commit()
    rows = [*ROWS, ["536390", "CAFÉ CRÈME"]]
    result = load_file(conn, write_csv(tmp_path / "продажи.csv", UCI_HEADER, rows), sheet="Лист")
    assert (result.lines_loaded, result.lines_rejected) == (5, 1)
    conn.execute("set client_encoding = 'UTF8'")
    assert raw_lines(conn) == EXPECTED
    assert refused_lines(conn) == {7: ("536390,CAFÉ CRÈME", "expected 8 fields, found 2")}


def test_lines_are_encoded_for_copy_in_blocks_of_bounded_size(tmp_path, conn, monkeypatch):
    """A block's rows are joined into one Arrow binary array, which holds under 2 GiB: large blocks are sliced."""
    blocks: list[int] = []
    real_rows = load_module._copy_rows
    monkeypatch.setattr(load_module, "COPY_BLOCK_BYTES", 300)
    monkeypatch.setattr(load_module, "_copy_rows", lambda good, batch: blocks.append(good.num_rows)
                        or real_rows(good, batch))
    load_file(conn, write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS))
    assert len(blocks) > 1 and sum(blocks) == len(ROWS)
    assert raw_lines(conn) == EXPECTED


def _relfilenode(conn: psycopg.Connection) -> int:
    return conn.execute("select relfilenode from pg_class where oid = 'raw.invoice_lines'::regclass").fetchone()[0]


def test_the_first_lines_go_into_a_table_made_anew_unless_someone_reads_it(tmp_path, conn, target):
    conn.execute("set lock_timeout = '20s'")  # a load that waited for the reader would fail, not hang
    load_module.ensure_raw_schema(conn)
    conn.commit()
    made = _relfilenode(conn)
    with psycopg.connect(target.url) as reader:
        reader.execute("select count(*) from raw.invoice_lines")  # a transaction left open on the empty table
        load_file(conn, write_csv(tmp_path / "first.csv", UCI_HEADER, ROWS))
        assert _relfilenode(conn) == made
    conn.execute("truncate raw.invoice_lines, raw.rejected_invoice_lines, raw.load_batches")
    conn.commit()
    emptied = _relfilenode(conn)
    load_file(conn, write_csv(tmp_path / "again.csv", UCI_HEADER, ROWS))
    assert _relfilenode(conn) != emptied
    assert raw_lines(conn) == EXPECTED
    anew = _relfilenode(conn)
    next_day = [[f"{row[0]}N", *row[1:4], "12/16/2010 10:00", *row[5:]] for row in ROWS]
    load_file(conn, write_csv(tmp_path / "next_day.csv", UCI_HEADER, next_day))
    assert _relfilenode(conn) == anew


def test_a_first_load_at_repeatable_read_copies_as_any_later_one(tmp_path, conn):
    """Its snapshot may predate another load's commit: the table it sees empty may not be."""
    load_module.ensure_raw_schema(conn)
    conn.commit()
    made = _relfilenode(conn)
    conn.commit()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    path = write_csv(tmp_path / "first.csv", UCI_HEADER, ROWS)
    assert load_file(conn, path).lines_loaded == len(ROWS)
    conn.commit()
    assert _relfilenode(conn) == made
    assert raw_lines(conn) == EXPECTED


def test_prices_keep_the_digits_of_their_shortest_text(tmp_path, conn):
    """Binary COPY encodes numerics itself: each price must store what numeric_in makes of its shortest repr
    (the text the loader sent before), on both sides of the encoder's limits (10^10, 8 decimals, 2^53)."""
    import numpy as np

    generator = np.random.default_rng(7)
    magnitudes = 10.0 ** generator.integers(-9, 22, 400)
    decimals = generator.integers(0, 12, 400)
    prices = [float(np.round(m * generator.random(), d)) * (-1) ** i
              for i, (m, d) in enumerate(zip(magnitudes, decimals, strict=True))]
    prices += [0.0, -0.0, 18.0, 2.5, 0.1, 0.00001, 1e-5 + 1e-12, 9999999999.99999999, 1e10, 12345678.12345678,
               9007199254740993.0, 1e15, 1e16, 1e21, 5e-324, 1.7976931348623157e308, 0.30000000000000004]
    rows = [[f"N{i}", "85123A", "HEART", 1, "12/1/2010 8:26", repr(price), 17850, "France"]
            for i, price in enumerate(prices)]
    result = load_file(conn, write_csv(tmp_path / "prices.csv", UCI_HEADER, rows))
    assert result.lines_loaded == len(prices)
    stored = conn.execute("select unit_price::text from raw.invoice_lines order by source_line").fetchall()
    expected = conn.execute("select price::numeric::text from unnest(%s::text[]) with ordinality as p(price, i)"
                            " order by i", ([repr(price) for price in prices],)).fetchall()
    assert stored == expected


def test_xlsx_refused_lines_have_reasons(tmp_path, conn):
    path = tmp_path / "refused.xlsx"
    rows = [ROWS[0], ["536390", "22111", "BOTTLE", "abc", "12/16/2010 9:00", 4.95, 17850, "United Kingdom"]]
    pd.DataFrame(rows, columns=UCI_HEADER).to_excel(path, index=False)
    result = load_file(conn, path)
    assert (result.lines_loaded, result.lines_rejected, result.date_format) == (1, 1, "%m/%d/%Y %H:%M")
    assert refused_lines(conn) == {
        3: ("536390,22111,BOTTLE,abc,12/16/2010 9:00,4.95,17850,United Kingdom", "quantity 'abc' is not an integer")
    }


def test_a_load_refreshes_statistics(tmp_path, conn, monkeypatch):
    monkeypatch.setattr(load_module, "ANALYZE_MIN_LINES", 5)
    load_file(conn, write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS))
    analyzed = conn.execute("select count(*) from pg_stats where schemaname = 'raw' and tablename = 'invoice_lines'")
    assert analyzed.fetchone()[0] > 0


def test_a_small_load_puts_its_batch_in_the_statistics(tmp_path, conn):
    # a new day is far below ANALYZE_MIN_LINES: without its batch in the statistics the planner takes it for one
    # line, and the day's build loops over it
    load_file(conn, write_csv(tmp_path / "first.csv", UCI_HEADER, ROWS))
    next_day = [[f"{row[0]}N", *row[1:4], "12/16/2010 10:00", *row[5:]] for row in ROWS]
    second = load_file(conn, write_csv(tmp_path / "next_day.csv", UCI_HEADER, next_day))
    values = conn.execute("select most_common_vals::text from pg_stats where schemaname = 'raw'"
                          " and tablename = 'invoice_lines' and attname = 'batch_id'").fetchone()
    assert values is not None and str(second.batch_id) in values[0].strip("{}").split(",")


def test_a_small_loads_analyze_leaves_the_statistics_target_as_it_was(tmp_path, conn):
    # the load's analyze samples less than the default; inside a caller's transaction, a setting made for the
    # transaction would hold for the caller's later statements too
    load_file(conn, write_csv(tmp_path / "first.csv", UCI_HEADER, ROWS))
    conn.execute("set default_statistics_target = 123")
    next_day = [[f"{row[0]}N", *row[1:4], "12/16/2010 10:00", *row[5:]] for row in ROWS]
    load_file(conn, write_csv(tmp_path / "next_day.csv", UCI_HEADER, next_day))
    assert conn.execute("select current_setting('default_statistics_target')").fetchone()[0] == "123"


def test_a_table_never_analyzed_is_sampled_at_the_full_target():
    assert load_module.batch_statistics_target(table_lines=-1, loaded=1_000, own_target=123) == 123


def test_replacing_a_file_leaves_only_its_new_lines_and_rejects(tmp_path, conn):
    path = write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS)
    first = load_file(conn, path)
    again = load_file(conn, path, replace=True)
    assert again.batch_id == first.batch_id
    counts = conn.execute("select (select count(*) from raw.invoice_lines), (select count(*) from"
                          " raw.rejected_invoice_lines), (select count(*) from raw.load_batches)").fetchone()
    assert counts == (first.lines_loaded, first.lines_rejected, 1)


def test_a_role_that_is_not_superuser_loads_all_the_same(tmp_path, conn, target):
    role = f"loader_{target.dbname}"
    conn.execute(f"create role {role} login password 'loader'")
    conn.execute(f"grant create on database {target.dbname} to {role}")
    conn.commit()
    try:
        with psycopg.connect(replace(target, user=role, password="loader").url) as restricted:
            result = load_file(restricted, write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS))
            assert result.lines_loaded == 5
            assert raw_lines(restricted) == EXPECTED
    finally:
        conn.execute(f"drop owned by {role}")
        conn.execute(f"drop role {role}")
        conn.commit()


def test_a_failure_while_copying_loads_nothing(tmp_path, conn, monkeypatch):
    path = write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS)
    load_module.ensure_raw_schema(conn)
    conn.commit()

    def broken(table, batch_id):
        raise RuntimeError("disk full")

    monkeypatch.setattr(load_module, "_copy_rows", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        load_file(conn, path)
    conn.rollback()
    assert conn.execute("select count(*) from raw.load_batches").fetchone()[0] == 0


def test_a_record_longer_than_a_block_is_read_line_by_line(tmp_path, conn, small_blocks):
    rows = [[f"N{i}", *GOOD_FIELDS] for i in range(50)]
    rows[20][2] = "LONG " * 2_000  # 10 kB: more than one of pyarrow's blocks
    rows[30] = ["N30", "too short"]
    path = write_csv(tmp_path / "long.csv", UCI_HEADER, rows)
    result = load_file(conn, path)
    assert (result.lines_read, result.lines_loaded, result.lines_rejected) == (50, 49, 1)
    assert loaded_lines(conn) == {f"N{i}": i + 2 for i in range(50) if i != 30}
    assert refused_lines(conn) == {32: ("N30,too short", "expected 8 fields, found 2")}
