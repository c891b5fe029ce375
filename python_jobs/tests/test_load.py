from __future__ import annotations

import csv
import logging
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
    assert only_one.lines_loaded == 2 and not only_one.already_loaded
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
