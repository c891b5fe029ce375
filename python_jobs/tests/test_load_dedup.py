"""No double counting: a line loaded through several files or sheets is held once (issue 10, item 3)."""

from __future__ import annotations

import threading
from datetime import date
from functools import partial
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest

from insiders import load
from insiders.dbt_runner import run_dbt
from insiders.load import load_file
from insiders.occurrence import OccurrenceCounter
from insiders.settings import Paths
from insiders.stages import data_span

from .test_load import II_HEADER, ROWS, UCI_HEADER, write_csv

# a line repeated in its own invoice (as the real file has): both copies are real lines
REPEATED = ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "12/1/2010 8:26", 2.55, 17850,
            "United Kingdom"]
YEAR = [*ROWS[:3], REPEATED, *ROWS[3:]]  # 6 lines, two of them identical
MONTH = [ROWS[2], ROWS[3], REPEATED, ROWS[4]]  # overlaps YEAR: 4 lines, one copy of the repeated line
NEW_IN_MONTH = ["536400", "22633", "HAND WARMER UNION JACK", 12, "12/16/2010 10:00", 1.85, None, "United Kingdom"]


def counts(conn: psycopg.Connection) -> tuple[int, ...]:
    return conn.execute("select count(*), sum(quantity * unit_price) from raw.invoice_lines").fetchone()


def key_counts(conn: psycopg.Connection) -> dict[tuple, int]:
    rows = conn.execute(
        "select invoice_no, stock_code, quantity, unit_price::float, invoiced_at, customer_id, count(*)"
        " from raw.invoice_lines group by 1, 2, 3, 4, 5, 6").fetchall()
    return {row[:-1]: row[-1] for row in rows}


def batch_counts(conn: psycopg.Connection) -> list[tuple[int, int, int, int]]:
    return conn.execute("select lines_read, lines_loaded, lines_duplicate, lines_rejected from raw.load_batches"
                        " order by batch_id").fetchall()


def test_a_file_repeating_loaded_lines_adds_only_its_new_ones(tmp_path, conn):
    year = load_file(conn, write_csv(tmp_path / "year.csv", UCI_HEADER, YEAR))
    assert (year.lines_read, year.lines_loaded, year.lines_duplicate) == (6, 6, 0)  # its own repeat stays
    month_rows = [*MONTH, NEW_IN_MONTH, ["536401", "x", "BROKEN", "abc", "12/16/2010 10:00", 1, 1, "France"]]
    month = load_file(conn, write_csv(tmp_path / "month.csv", UCI_HEADER, month_rows))
    assert (month.lines_read, month.lines_loaded, month.lines_duplicate, month.lines_rejected) == (6, 1, 4, 1)
    assert conn.execute("select count(*) from raw.invoice_lines").fetchone()[0] == 7
    assert batch_counts(conn) == [(6, 6, 0, 0), (6, 1, 4, 1)]


def test_overlapping_files_in_either_order_give_each_line_once(tmp_path, new_database):
    # the month file holds the repeated line twice: its second copy is new to the year file's single copy
    year_rows = [*ROWS, ROWS[0]]
    month_rows = [ROWS[0], ROWS[1], ROWS[0], ROWS[0], NEW_IN_MONTH]
    a = write_csv(tmp_path / "a.csv", UCI_HEADER, year_rows)
    b = write_csv(tmp_path / "b.csv", II_HEADER, month_rows)  # another layout: the same lines all the same
    outcomes = []
    for files in ([a, b], [b, a]):
        with psycopg.connect(new_database().url) as conn:
            results = [load_file(conn, path) for path in files]
            assert all(r.lines_read == r.lines_loaded + r.lines_duplicate + r.lines_rejected for r in results)
            outcomes.append((counts(conn), key_counts(conn)))
    assert outcomes[0] == outcomes[1]
    (n_lines, _), per_key = outcomes[0]
    # ROWS[0] three times (the most any one file holds), the others once, plus the new line
    assert n_lines == 3 + 4 + 1
    assert max(per_key.values()) == 3


def test_other_formatting_of_the_same_lines_is_recognised(tmp_path, conn):
    load_file(conn, write_csv(tmp_path / "lines.csv", UCI_HEADER, ROWS))
    frame = pd.DataFrame(ROWS, columns=UCI_HEADER)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"], format="%m/%d/%Y %H:%M")
    frame["CustomerID"] = frame["CustomerID"].astype(float)
    frame["UnitPrice"] = frame["UnitPrice"].map(lambda p: f"{p:.4f}")  # 2.5500: the same price
    frame["Description"] = frame["Description"].str.lower()  # not part of the key
    frame.to_parquet(tmp_path / "re-export.parquet")
    again = load_file(conn, tmp_path / "re-export.parquet")
    assert (again.lines_read, again.lines_loaded, again.lines_duplicate) == (5, 0, 5)


def test_sheets_sharing_a_week_count_the_shared_lines_once(tmp_path, conn):
    path = tmp_path / "online_retail_II.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame(ROWS[:4], columns=II_HEADER).to_excel(writer, sheet_name="Year 2009-2010", index=False)
        pd.DataFrame(ROWS[2:], columns=II_HEADER).to_excel(writer, sheet_name="Year 2010-2011", index=False)
    result = load_file(conn, path)
    assert (result.lines_read, result.lines_loaded, result.lines_duplicate) == (7, 5, 2)
    # the sheet alone, loaded again, brings nothing new
    alone = load_file(conn, path, sheet="Year 2010-2011")
    assert (alone.lines_read, alone.lines_loaded, alone.lines_duplicate) == (3, 0, 3)


def test_replace_takes_the_lines_out_and_back(tmp_path, conn):
    path = write_csv(tmp_path / "year.csv", UCI_HEADER, YEAR)
    first = load_file(conn, path)
    month = load_file(conn, write_csv(tmp_path / "month.csv", UCI_HEADER, [*MONTH, NEW_IN_MONTH]))
    assert month.lines_loaded == 1
    again = load_file(conn, path, replace=True)
    assert (again.batch_id, again.lines_loaded, again.lines_duplicate) == (first.batch_id, 6, 0)
    assert conn.execute("select count(*) from raw.invoice_lines").fetchone()[0] == 7


def test_the_batch_counts_must_add_up(tmp_path, conn):
    load_file(conn, write_csv(tmp_path / "year.csv", UCI_HEADER, YEAR))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("update raw.load_batches set lines_duplicate = lines_duplicate + 1")


def test_a_database_from_before_the_natural_key_is_migrated(tmp_path, conn):
    """Tables as the loader made them before: the same lines loaded by two files are taken out of the later
    batch and counted as its duplicates; migrating twice changes nothing."""
    conn.execute("create schema raw")
    conn.execute("""
        create table raw.load_batches (
            batch_id bigint generated by default as identity primary key, source_file text not null,
            source_path text not null, file_sha256 text not null, sheet_selection text not null default '',
            file_format text not null, column_layout text not null, text_encoding text, date_format text,
            lines_read bigint not null, lines_loaded bigint not null, lines_rejected bigint not null,
            started_at timestamptz not null, loaded_at timestamptz not null,
            constraint load_batches_content_key unique (file_sha256, sheet_selection),
            constraint load_batches_lines_add_up check (lines_read = lines_loaded + lines_rejected));
        create table raw.invoice_lines (
            batch_id bigint not null, source_sheet text not null default '', source_line bigint not null,
            invoice_no text not null, stock_code text not null, description text, quantity integer not null,
            invoiced_at timestamp not null, unit_price numeric not null, customer_id bigint, country text,
            primary key (batch_id, source_sheet, source_line));
        insert into raw.load_batches (source_file, source_path, file_sha256, file_format, column_layout,
            lines_read, lines_loaded, lines_rejected, started_at, loaded_at)
        values ('year.csv', '/year.csv', 'a', 'csv', 'uci_online_retail', 3, 3, 0, now(), now()),
               ('month.csv', '/month.csv', 'b', 'csv', 'uci_online_retail', 4, 3, 1, now(), now());
        insert into raw.invoice_lines (batch_id, source_line, invoice_no, stock_code, quantity, invoiced_at,
            unit_price, customer_id)
        values (1, 2, '1', 'A', 1, '2010-12-01', 2.5, 7), (1, 3, '1', 'A', 1, '2010-12-01', 2.5, 7),
               (1, 4, '2', 'B', 1, '2010-12-01', 1, null),
               (2, 2, '1', 'A', 1, '2010-12-01', 2.50, 7), (2, 3, '2', 'B', 1, '2010-12-01', 1, null),
               (2, 4, '3', 'C', 1, '2010-12-02', 1, null);
    """)
    conn.commit()
    for again, header in enumerate((UCI_HEADER, II_HEADER)):  # other bytes, the same line
        result = load_file(conn, write_csv(tmp_path / f"new{again}.csv", header, ROWS[:1]))
        assert (result.lines_loaded, result.lines_duplicate) == (1 - again, again)
    assert batch_counts(conn)[:2] == [(3, 3, 0, 0), (4, 1, 2, 1)]
    assert conn.execute("select batch_id, source_line, line_occurrence from raw.invoice_lines where batch_id < 3"
                        " order by 1, 2").fetchall() == [(1, 2, 1), (1, 3, 2), (1, 4, 1), (2, 4, 1)]
    # the periods the batches cover: read from the lines the migration kept, noted by the loads since
    spans = conn.execute("select batch_id, first_invoiced_at, last_invoiced_at from raw.load_batches order by 1")
    lines = conn.execute("select batch_id, min(invoiced_at), max(invoiced_at) from raw.invoice_lines group by 1"
                         " order by 1")
    assert spans.fetchall()[:3] == lines.fetchall()
    assert data_span(conn) == (date(2010, 12, 1), date(2010, 12, 2))


@pytest.mark.parametrize("max_unresolved", [100, 0], ids=["invoices", "whole-batch"])
def test_repeats_farther_apart_than_the_window_are_numbered_by_the_server(tmp_path, conn, monkeypatch,
                                                                            max_unresolved):
    """Blocks of 2 lines and a window of 1: the line repeated 4 lines later is numbered by the server (its invoice
    renumbered, or with too many such invoices the whole batch), as if the file had been read at once."""
    monkeypatch.setattr(load, "CHUNK_LINES", 2)
    monkeypatch.setattr(load, "OccurrenceCounter",
                        partial(OccurrenceCounter, window=1, max_unresolved=max_unresolved))
    far_apart = [ROWS[0], ROWS[1], ROWS[2], ROWS[3], ROWS[0], ROWS[4], ROWS[0]]
    first = load_file(conn, write_csv(tmp_path / "far.csv", UCI_HEADER, far_apart))
    assert (first.lines_loaded, first.lines_duplicate) == (7, 0)
    assert conn.execute("select line_occurrence from raw.invoice_lines where invoice_no = %s order by source_line",
                        (ROWS[0][0],)).fetchall() == [(1,), (2,), (3,)]
    again = load_file(conn, write_csv(tmp_path / "again.csv", UCI_HEADER, [ROWS[0]] * 4))
    assert (again.lines_loaded, again.lines_duplicate) == (1, 3)


def test_two_loads_at_once_take_turns_on_the_lines(tmp_path, target):
    """Without the commands' writer lock (load_file called directly): overlapping files loaded at the same time
    still give each line once, the second load waiting for the first to commit."""
    lines = [[str(600000 + i), "22633", "HAND WARMER", 1 + i % 7, f"12/{1 + i % 28}/2010 10:00", 1.85, 17850,
              "United Kingdom"] for i in range(40_000)]
    files = [write_csv(tmp_path / "a.csv", UCI_HEADER, lines[:30_000]),
             write_csv(tmp_path / "b.csv", UCI_HEADER, lines[10_000:])]
    with psycopg.connect(target.url) as connection:  # the tables exist: only the lines' lock is at stake
        load.ensure_raw_schema(connection)
    results: list[load.LoadResult] = []
    start = threading.Barrier(2)

    def one(path: Path) -> None:
        with psycopg.connect(target.url) as connection:
            start.wait()
            results.append(load_file(connection, path))

    threads = [threading.Thread(target=one, args=(path,)) for path in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted((r.lines_loaded, r.lines_duplicate) for r in results) == [(10_000, 20_000), (30_000, 0)]
    with psycopg.connect(target.url) as connection:
        assert counts(connection)[0] == 40_000


def test_a_database_with_the_unique_index_drops_it(tmp_path, conn):
    load_file(conn, write_csv(tmp_path / "year.csv", UCI_HEADER, YEAR))
    conn.execute("drop index raw.invoice_lines_invoiced_at")
    conn.execute("create unique index invoice_lines_natural_key on raw.invoice_lines (invoice_no, stock_code,"
                 " quantity, unit_price, invoiced_at, customer_id, line_occurrence) nulls not distinct")
    conn.commit()
    month = load_file(conn, write_csv(tmp_path / "month.csv", UCI_HEADER, [*MONTH, NEW_IN_MONTH]))
    assert (month.lines_loaded, month.lines_duplicate) == (1, 4)
    indexes = {name for (name,) in conn.execute(
        "select indexname from pg_indexes where schemaname = 'raw' and tablename = 'invoice_lines'")}
    assert indexes == {"invoice_lines_pkey", "invoice_lines_invoiced_at"}


def test_dbt_accounts_for_duplicates_and_guards_the_counts(tmp_path, target, test_paths: Paths):
    with psycopg.connect(target.url) as conn:
        load_file(conn, write_csv(tmp_path / "year.csv", UCI_HEADER, YEAR))
        month = load_file(conn, write_csv(tmp_path / "month.csv", UCI_HEADER, [*MONTH, NEW_IN_MONTH]))
    checks = ["build", "--select", "+rpt_data_quality", "assert_load_batches_lines_add_up",
              "source:online_retail", "--exclude", "resource_type:unit_test"]
    assert run_dbt(test_paths, target, checks, check=False, quiet=True) == 0
    with psycopg.connect(target.url) as conn:
        rows = dict(conn.execute("select rule, n_lines from marts.rpt_data_quality where batch_id = %s and"
                                 " n_lines > 0", (month.batch_id,)).fetchall())
        assert rows["duplicate_line"] == 4 and sum(rows.values()) == month.lines_read
        # a line gone from the raw table without its batch's counts: the guard fails
        conn.execute("delete from raw.invoice_lines where batch_id = %s", (month.batch_id,))
    guard = ["test", "--select", "assert_load_batches_lines_add_up"]
    assert run_dbt(test_paths, target, guard, check=False, quiet=True) != 0


def test_the_real_file_then_its_first_100000_lines(tmp_path, conn, real_data: Path):
    first_lines = tmp_path / "first_100000.parquet"
    pq.write_table(pq.read_table(real_data).slice(0, 100_000), first_lines)
    whole = load_file(conn, real_data)
    assert (whole.lines_read, whole.lines_loaded, whole.lines_duplicate) == (541_909, 541_909, 0)
    part = load_file(conn, first_lines)
    assert (part.lines_read, part.lines_loaded, part.lines_duplicate, part.lines_rejected) == (100_000, 0,
                                                                                               100_000, 0)
    assert conn.execute("select count(*) from raw.invoice_lines").fetchone()[0] == 541_909
