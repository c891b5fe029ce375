"""dbt in this process without the start-up tax, and the line tables built batch by batch."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import psycopg

from insiders import dbt_runner
from insiders.db import create_tables
from insiders.load import load_file
from insiders.program.config import ProgramConfig
from insiders.settings import Paths
from insiders.stages import build_features

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
# too little history for inner backtests: the features stage builds exactly the dates asked for
PROGRAM = ProgramConfig()


def write_lines(path: Path, day: str, customers: range, invoice_base: int) -> Path:
    lines = [f"{invoice_base + c},8520{c % 7},MUG,{1 + c % 5},{day} 10:{c % 60:02d},2.55,{17000 + c},France\n"
             for c in customers]
    path.write_text(HEADER + "".join(lines))
    return path


def count(target, sql: str) -> int:
    with psycopg.connect(target.url) as conn:
        return conn.execute(sql).fetchone()[0]


def test_new_dates_reach_dbt_through_data_and_parse_once(target, tmp_path):
    paths = Paths(project_dir=Path(__file__).resolve().parents[2], state_dir=tmp_path / "state")
    perf_info = paths.state_dir / "dbt-target" / "perf_info.json"
    with psycopg.connect(target.url) as conn:
        load_file(conn, write_lines(tmp_path / "a.csv", "3/1/2011", range(40), 500000))
    build_features(paths, target, [date(2011, 3, 1)], PROGRAM)
    assert json.loads(perf_info.read_text())["parsed_path_count"] > 50  # the first parse reads the project
    perf_info.unlink()
    build_features(paths, target, [date(2011, 3, 2)], PROGRAM)
    assert not perf_info.exists()  # the same process hands dbt the manifest it parsed: no parse at all
    dbt_runner._manifests.clear()  # as a new process would start
    build_features(paths, target, [date(2011, 3, 3)], PROGRAM)
    assert json.loads(perf_info.read_text())["parsed_path_count"] == 0  # partial parsing: a new date is data
    assert count(target, "select count(distinct as_of_date) from marts.fct_customer_features") == 3
    assert count(target, "select count(*) from control.feature_dates") == 0  # requests do not outlive the build
    # `run` restates its as-of date to take in new lines; with none loaded since, there is nothing to build
    assert build_features(paths, target, [date(2011, 3, 3)], PROGRAM, rebuild=[date(2011, 3, 3)]) == []
    with psycopg.connect(target.url) as conn:
        load_file(conn, write_lines(tmp_path / "b.csv", "3/3/2011", range(40, 45), 510000))
    assert build_features(paths, target, [date(2011, 3, 3)], PROGRAM, rebuild=[date(2011, 3, 3)]) == [
        date(2011, 3, 3)]
    assert count(target, "select count(*) from marts.fct_customer_features where as_of_date = '2011-03-03'") == 45


def test_line_tables_grow_batch_by_batch_and_a_replaced_file_counts_once(target, test_paths, tmp_path):
    first = write_lines(tmp_path / "day1.csv", "3/1/2011", range(30), 600000)
    second = write_lines(tmp_path / "day2.csv", "3/2/2011", range(20, 50), 700000)
    checked = "select count(*) from intermediate.int_invoice_lines__rule_checks"
    with psycopg.connect(target.url) as conn:
        load_file(conn, first)
    build_features(test_paths, target, [date(2011, 3, 1)], PROGRAM)
    assert count(target, checked) == 30
    with psycopg.connect(target.url) as conn:
        load_file(conn, second)
    build_features(test_paths, target, [date(2011, 3, 2)], PROGRAM)
    assert count(target, checked) == 60
    with psycopg.connect(target.url) as conn:
        load_file(conn, first, replace=True)
    build_features(test_paths, target, [date(2011, 3, 2)], PROGRAM, rebuild=[date(2011, 3, 2)])
    assert count(target, checked) == 60
    assert count(target, checked.replace("count(*)", "count(distinct invoice_line_id)")) == 60
    # the earlier date keeps what it was built from; the later one sees both days
    assert count(target, "select count(*) from marts.fct_customer_features where as_of_date = '2011-03-01'") == 30
    assert count(target, "select count(*) from marts.fct_customer_features where as_of_date = '2011-03-02'") == 50
    assert count(target, "select count(*) from marts.fct_customer_daily_sales") == 60


# every column but the stamp that says when a row was written
COMPARED = {
    "intermediate.int_invoice_lines__rule_checks": "invoice_line_id, removed_by_rule, invoice_date, customer_id",
    "intermediate.int_customer_invoices": "customer_id, invoice_no, invoice_date, country, purchase_revenue,"
                                          " returned_value, purchased_items, returned_items, purchase_lines,"
                                          " distinct_products_purchased, has_purchase, has_return",
    "intermediate.int_customer_days": "customer_id, invoice_date, has_purchase, n_purchase_invoices, n_return_invoices,"
                                      " purchase_revenue, returned_value, purchased_items, returned_items,"
                                      " purchase_lines, distinct_products_purchased",
    "intermediate.int_customer_products": "customer_id, stock_code, first_bought_on",
    "intermediate.int_customer_new_products": "customer_id, first_bought_on, n_new_products",
    "intermediate.int_invoice_lines__rule_counts": "batch_id, rule, n_lines, line_revenue, purchase_revenue",
    "marts.fct_customer_daily_sales": "customer_id, invoice_date, gross_revenue, returned_value, net_revenue,"
                                      " has_purchase",
    "marts.rpt_data_quality": "batch_id, rule, n_lines, line_revenue, purchase_revenue",
    "marts.fct_customer_features": "*",
}


def table_rows(target, table: str, columns: str, where: str = "true") -> list[tuple]:
    with psycopg.connect(target.url) as conn:
        return sorted(conn.execute(f"select {columns} from {table} where {where}").fetchall(), key=repr)


def test_days_appended_with_late_lines_and_a_reloaded_file_build_what_a_full_build_does(new_database, test_paths,
                                                                                        tmp_path):
    day1 = write_lines(tmp_path / "day1.csv", "3/1/2011", range(30), 600000)
    day2 = write_lines(tmp_path / "day2.csv", "3/2/2011", range(20, 50), 700000)
    # lines loaded late, dated inside days already built: one more product on an invoice of day 1 (its invoice row
    # changes), a product customer 17035 first bought on day 2 now bought on day 1 (its first day moves earlier),
    # new customers on day 1, and a return
    late = tmp_path / "late.csv"
    late.write_text(HEADER + "600001,99999,VASE,2,3/1/2011 10:01,4.25,17001,France\n"
                    "600900,85200,MUG,1,3/1/2011 11:00,2.55,17035,France\n"
                    + "".join(f"6009{c:02d},85201,MUG,3,3/1/2011 12:00,2.55,{18000 + c},Spain\n" for c in range(10))
                    + "C600950,85203,MUG,-1,3/2/2011 15:00,2.55,17003,France\n")
    day3 = write_lines(tmp_path / "day3.csv", "3/3/2011", range(45, 70), 800000)

    appended = new_database()
    with psycopg.connect(appended.url) as conn:
        load_file(conn, day1)
    build_features(test_paths, appended, [date(2011, 3, 1)], PROGRAM)
    with psycopg.connect(appended.url) as conn:
        load_file(conn, day2)
    build_features(test_paths, appended, [date(2011, 3, 2)], PROGRAM)
    with psycopg.connect(appended.url) as conn:
        load_file(conn, late)
        load_file(conn, day3)
    build_features(test_paths, appended, [date(2011, 3, 3)], PROGRAM)
    with psycopg.connect(appended.url) as conn:  # loaded again: its lines go and come back under a new load time
        load_file(conn, day2, replace=True)
    build_features(test_paths, appended, [date(2011, 3, 3)], PROGRAM, rebuild=[date(2011, 3, 3)])

    whole = new_database()
    with psycopg.connect(whole.url) as conn:
        for path in (day1, day2, late, day3):
            load_file(conn, path)
    build_features(test_paths, whole, [date(2011, 3, 3)], PROGRAM)

    for table, columns in COMPARED.items():
        where = "as_of_date = '2011-03-03'" if table.endswith("features") else "true"
        assert table_rows(appended, table, columns, where) == table_rows(whole, table, columns, where), table
    assert table_rows(appended, "intermediate.int_customer_products", "first_bought_on",
                      "customer_id = 17035 and stock_code = '85200'") == [(date(2011, 3, 1),)]
    # the dates built before the late lines keep what they were built from (point in time)
    assert count(appended, "select count(*) from marts.fct_customer_features where as_of_date = '2011-03-01'") == 30


def column_statistics(target, column: str) -> str | None:
    with psycopg.connect(target.url) as conn:
        statistics = conn.execute(
            "select concat_ws(' | ', most_common_vals::text, histogram_bounds::text) from pg_stats"
            " where schemaname = 'marts' and tablename = 'fct_customer_features' and attname = %s",
            (column,)).fetchone()
    return statistics[0] if statistics else None


def test_large_changes_analyze_the_index_columns_alone(target, test_paths, tmp_path):
    with psycopg.connect(target.url) as conn:
        load_file(conn, write_lines(tmp_path / "a.csv", "3/1/2011", range(40), 800000))
    build_features(test_paths, target, [date(2011, 3, 1)], PROGRAM)
    with psycopg.connect(target.url) as conn:  # autovacuum's own analyze would fill in the other columns
        conn.execute("alter table marts.fct_customer_features set (autovacuum_enabled = false)")
    # a new table: the columns of its index are analyzed, and the others left to autovacuum
    assert column_statistics(target, "as_of_date") == "{2011-03-01}"
    assert column_statistics(target, "gross_revenue") is None
    with psycopg.connect(target.url) as conn:
        load_file(conn, write_lines(tmp_path / "b.csv", "3/2/2011", range(40), 810000))
    build_features(test_paths, target, [date(2011, 3, 2)], PROGRAM)
    # twice the rows, far above the tenth: the index columns and the row count are new
    assert column_statistics(target, "as_of_date") == "{2011-03-01,2011-03-02}"
    assert count(target, "select reltuples::int from pg_class where oid = 'marts.fct_customer_features'::regclass"
                 ) == 80
    assert column_statistics(target, "gross_revenue") is None


def test_a_days_labels_are_found_by_date(target):
    """A run deletes its date's labels and forecasts and the segment marts read them by date: through an index that
    leads with the date, not by reading every date ever labelled (the primary keys lead with the customer)."""
    with psycopg.connect(target.url) as conn:
        create_tables(conn, "ml")
        for table in ("customer_segments", "customer_forecasts"):
            assert conn.execute(
                "select exists (select 1 from pg_index as indexes join pg_attribute as columns"
                " on columns.attrelid = indexes.indrelid and columns.attnum = indexes.indkey[0]"
                " where indexes.indrelid = %s::regclass and columns.attname = 'as_of_date')",
                (f"ml.{table}",)).fetchone()[0], table
