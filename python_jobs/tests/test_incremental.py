"""dbt in this process without the start-up tax, and the line tables built batch by batch."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import psycopg

from insiders import dbt_runner
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
