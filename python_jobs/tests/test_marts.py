"""Issue 5 end to end on the real file: monthly backfill, segment marts, roles, and the HTML report."""

from __future__ import annotations

import itertools
import re
import subprocess
from datetime import date

import psycopg
import pytest

from insiders.backfill import backfill, month_ends
from insiders.report import write_report
from insiders.roles import create_roles

from .support import CHROMIUM, chromium_flags, render_in_chromium

BACKFILL_DATES = month_ends(date(2011, 10, 31), date(2011, 12, 9))


@pytest.fixture(scope="module")
def backfilled(new_database, real_template, test_paths):
    """The real file, backfilled month by month from October 2011: the history the marts are built from."""
    target = new_database(template=real_template)
    backfill(test_paths, target, BACKFILL_DATES)
    return target


def query(target, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(target.url) as conn:
        return conn.execute(sql, params).fetchall()


def test_month_ends_cover_the_range_and_its_last_day():
    assert month_ends(date(2011, 1, 31), date(2011, 12, 9))[::5] == [
        date(2011, 1, 31), date(2011, 6, 30), date(2011, 11, 30)]
    assert month_ends(date(2011, 1, 31), date(2011, 12, 9))[-1] == date(2011, 12, 9)
    assert len(month_ends(date(2011, 1, 31), date(2011, 12, 9))) == 12


def test_summary_has_every_month_and_stable_segment_ids(backfilled):
    rows = query(backfilled, "select as_of_date, segment_id, segment_name from marts.fct_segment_summary")
    assert sorted({r[0] for r in rows}) == BACKFILL_DATES
    names_by_date = {}
    for as_of, segment_id, name in rows:
        names_by_date.setdefault(as_of, {})[segment_id] = name
    first = names_by_date[BACKFILL_DATES[0]]
    assert all(names == first for names in names_by_date.values())
    assert query(backfilled, "select count(*) from ml.model_runs where mode = 'fit'") == [(1,)]


def test_transitions_balance(backfilled):
    unbalanced = query(backfilled, """
        with sizes as (
            select as_of_date, segment_id, count(*) as n from marts.fct_customer_segments group by 1, 2
        ),
        leaving as (
            select from_as_of_date as as_of_date, from_segment_id as segment_id, sum(n_customers) as n
            from marts.fct_segment_transitions where from_segment_id <> 0 group by 1, 2
        )
        select sizes.* from sizes join leaving using (as_of_date, segment_id) where sizes.n <> leaving.n""")
    assert unbalanced == []
    pairs = query(backfilled, "select distinct from_as_of_date, to_as_of_date from marts.fct_segment_transitions"
                              " order by 1")
    assert pairs == list(itertools.pairwise(BACKFILL_DATES))
    changes = query(backfilled, "select change, count(*) from marts.rpt_insider_changes group by 1")
    assert {change for change, _ in changes} <= {"entered", "left"}


def test_hypotheses_each_have_a_figure_with_its_interval(backfilled):
    rows = query(backfilled, "select hypothesis_id, insiders_value, insiders_value_low, insiders_value_high,"
                             " compared_with, holds from marts.rpt_hypotheses where as_of_date = '2011-12-09'"
                             " order by 1")
    assert [r[0] for r in rows] == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert all(None not in r and r[2] <= r[1] <= r[3] for r in rows)
    assert rows[0][5] is True  # the Insiders bring well over 10% of revenue


def test_membership_history_has_validity_dates_and_reruns_add_no_duplicates(backfilled, test_paths):
    versions = query(backfilled, "select count(*), count(distinct customer_id), min(valid_from)"
                                 " from marts.fct_segment_memberships")[0]
    assert versions[0] > versions[1]  # some customers changed segment over the three months
    assert versions[2] == BACKFILL_DATES[0]
    before = query(backfilled, "select count(*) from ml.customer_segments")
    backfill(test_paths, backfilled, BACKFILL_DATES[-1:])
    assert query(backfilled, "select count(*) from ml.customer_segments") == before
    assert query(backfilled, "select count(*) from marts.fct_segment_memberships")[0][0] == versions[0]


def test_analyst_role_reads_the_marts_and_nothing_else(backfilled, monkeypatch):
    monkeypatch.setenv("INSIDERS_ANALYST_PASSWORD", "analyst-secret")
    monkeypatch.setenv("INSIDERS_BI_PASSWORD", "bi-secret")
    create_roles(backfilled)
    analyst = backfilled.url.replace(f"{backfilled.user}:{backfilled.password}@", "insiders_analyst:analyst-secret@")
    with psycopg.connect(analyst, autocommit=True) as conn:
        marts = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'").fetchall()]
        assert {"fct_customer_features", "fct_segment_summary", "dim_customers", "rpt_hypotheses"} <= set(marts)
        for table in marts:
            conn.execute(f"select * from marts.{table} limit 1")
        for statement in ("insert into marts.dim_customers (customer_id) values (1)",
                          "create table marts.scratch (a int)", "create schema scratch",
                          "select * from raw.invoice_lines limit 1", "select * from ml.customer_segments limit 1"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_report_renders_in_headless_chromium(backfilled, tmp_path):
    with psycopg.connect(backfilled.url) as conn:
        report = write_report(conn, tmp_path / "report.html")
    page = report.read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page  # nothing to fetch
    dom, log = render_in_chromium(report, tmp_path)
    body = re.search(r"<body[^>]*>", dom).group(0)
    # the share bars, the map, sizes, revenue shares and the Insiders' share over time, the moves
    assert 'data-rendered="ok"' in body and 'data-charts="6"' in body
    assert "Uncaught" not in log and "CONSOLE" not in log
    screenshot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *chromium_flags(tmp_path), "--window-size=1200,4200", f"--screenshot={screenshot}",
                    report.as_uri()], capture_output=True, timeout=120, check=True)
    assert screenshot.stat().st_size > 50_000  # charts, not a blank page
    print(f"screenshot: {screenshot}")
