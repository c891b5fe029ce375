"""History is kept: a plain `dbt build --full-refresh` leaves the feature and segment history as it was (the segment
mart, the summary and the transitions, built by date, hold what a rebuild from the labels gives), and the
membership history covers every labelled date whatever order the dates were labelled in."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from insiders import db
from insiders.backfill import backfill
from insiders.dbt_runner import run_dbt
from insiders.errors import InsidersError
from insiders.stages import build_marts

from .support import LABELLED_DATES, QUICK_PROGRAM

BETWEEN_MIDDLE_AND_LATEST = date(2011, 11, 30)

HISTORY = """
    select
        (select count(distinct as_of_date) from marts.fct_customer_features),
        (select count(*) from marts.fct_customer_features),
        (select count(*) from marts.fct_customer_segments),
        (select count(*) from marts.fct_segment_memberships),
        (select md5(string_agg(labels::text, '|' order by customer_id, as_of_date))
         from marts.fct_customer_segments as labels),
        (select md5(string_agg(summary::text, '|' order by as_of_date, segment_id))
         from marts.fct_segment_summary as summary),
        (select md5(string_agg(moves::text, '|' order by from_as_of_date, from_segment_id, to_segment_id,
                                                 from_is_insider, to_is_insider))
         from marts.fct_segment_transitions as moves)
"""
# dates whose rows in the segment mart are not all from the date's latest run (the mart is built date by date)
NOT_FROM_LATEST_RUN = """
    select count(*) from (
        select labels.as_of_date from marts.fct_customer_segments as labels
        group by labels.as_of_date
        having max(labels.run_id) <> min(labels.run_id)
            or max(labels.run_id) <> (select max(runs.run_id) from ml.model_runs as runs
                                      where runs.as_of_date = labels.as_of_date)
    ) as stale
"""
# every labelled (customer, date) lies in exactly one stay: valid_from <= date <= last_seen_on
UNCOVERED_LABELS = """
    select count(*) from marts.fct_customer_segments as labels
    where (
        select count(*) from marts.fct_segment_memberships as stays
        where stays.customer_id = labels.customer_id
            and labels.as_of_date between stays.valid_from and stays.last_seen_on
    ) <> 1
"""


def _read(target, query: str) -> tuple:
    with psycopg.connect(target.url) as conn:
        return conn.execute(query).fetchone()


def test_history_survives_full_refresh_and_memberships_cover_every_date(new_database, demo_template, test_paths):
    target = new_database(template=demo_template)
    first, middle, latest = LABELLED_DATES
    # dates labelled in an order that makes the marts kept by date and by pair of dates take in each case: a date
    # before every other, a new last date (a day's run), then a date between two others (the pair that spanned it
    # is replaced) with the latest labelled again
    backfill(test_paths, target, [middle], program=QUICK_PROGRAM)
    backfill(test_paths, target, [first], program=QUICK_PROGRAM)
    backfill(test_paths, target, [latest], program=QUICK_PROGRAM)
    backfill(test_paths, target, [BETWEEN_MIDDLE_AND_LATEST, latest], program=QUICK_PROGRAM)
    before = _read(target, HISTORY)
    assert before[0] >= len(LABELLED_DATES) and before[2] > 0
    assert _read(target, UNCOVERED_LABELS) == (0,)
    # the last backfill labelled the latest date again: its rows were replaced, the earlier dates' added
    assert _read(target, NOT_FROM_LATEST_RUN) == (0,)
    labelled_dates = _read(target, "select count(distinct as_of_date) from marts.fct_customer_segments")[0]
    assert labelled_dates == len(LABELLED_DATES) + 1

    # the summary and the transitions, built by date and by pair, are what a rebuild from the labels gives
    assert run_dbt(test_paths, target, ["build", "--full-refresh"], check=False, quiet=True) == 0
    assert _read(target, HISTORY) == before
    assert _read(target, UNCOVERED_LABELS) == (0,)

    # as an earlier version left them (built whole: no run columns, no index), built again by date, with an index
    with psycopg.connect(target.url, autocommit=True) as conn:
        for table, run_columns in [("fct_segment_summary", "run_id"),
                                   ("fct_segment_transitions", "from_run_id cascade, drop column to_run_id")]:
            for (index,) in conn.execute("select indexname from pg_indexes where schemaname = 'marts'"
                                         " and tablename = %s", (table,)).fetchall():
                conn.execute(f'drop index marts."{index}"')
            conn.execute(f"alter table marts.{table} drop column {run_columns} cascade")
    build_marts(test_paths, target)
    assert _read(target, HISTORY) == before
    assert _read(target, "select to_regclass('marts.latest_segment_summary') is not null") == (True,)
    assert _read(target, "select count(*) from pg_indexes where schemaname = 'marts'"
                         " and tablename in ('fct_segment_summary', 'fct_segment_transitions')") == (2,)


LABELLED_NOW = "select array_agg(as_of_date::text order by as_of_date) from control.labelled_now"


def test_the_labels_tests_check_the_dates_labelled_since_the_marts_were_built(new_database, demo_template,
                                                                              test_paths):
    target = new_database(template=demo_template)
    first, middle, latest = LABELLED_DATES
    backfill(test_paths, target, [first, middle], program=QUICK_PROGRAM)
    assert _read(target, LABELLED_NOW) == ([str(first), str(middle)],)  # the marts' first build: every date
    backfill(test_paths, target, [latest], program=QUICK_PROGRAM)
    assert _read(target, LABELLED_NOW) == ([str(latest)],)  # a new date: that date alone
    backfill(test_paths, target, [first], program=QUICK_PROGRAM)
    assert _read(target, LABELLED_NOW) == ([str(first)],)  # a date labelled again
    compiled = next((test_paths.state_dir / "dbt-target" / "run").rglob(
        "not_null_stg_ml__customer_segments_customer_id.sql")).read_text()
    assert f"as_of_date in (cast('{first}' as date))" in compiled
    build_marts(test_paths, target)  # nothing labelled since: the latest date is checked
    assert _read(target, LABELLED_NOW) == ([str(latest)],)
    assert _read(target, "select bool_and(checked) from control.labelled_now") == (True,)
    with psycopg.connect(target.url) as conn:  # as if a test of that build had failed
        conn.execute("update control.labelled_now set checked = false")
    backfill(test_paths, target, [middle], program=QUICK_PROGRAM)
    assert _read(target, LABELLED_NOW) == ([str(middle), str(latest)],)  # checked again, beside the new date


def test_a_label_of_no_recorded_run_fails_the_marts_build_and_old_foreign_keys_go(new_database, demo_template,
                                                                               test_paths):
    """The per-customer label tables have no foreign key to ml.model_runs (checked row by row as the job wrote):
    dbt's relationships tests hold them to their run, and an older database's keys are dropped."""
    target = new_database(template=demo_template)
    latest = LABELLED_DATES[-1]
    backfill(test_paths, target, [latest], program=QUICK_PROGRAM)
    with psycopg.connect(target.url) as conn:
        for table in ("customer_segments", "customer_forecasts"):  # as an earlier release created them
            conn.execute(f"alter table ml.{table} add constraint {table}_run_id_fkey"
                         " foreign key (run_id) references ml.model_runs (run_id)")
        db.create_tables(conn, "ml")
        assert conn.execute("select count(*) from pg_constraint where conname in"
                            " ('customer_segments_run_id_fkey', 'customer_forecasts_run_id_fkey')").fetchone() == (0,)
        for table in ("customer_segments", "customer_forecasts"):
            conn.execute(f"update ml.{table} set run_id = 'no such run' where as_of_date = %(date)s and customer_id ="
                         f" (select min(customer_id) from ml.{table} where as_of_date = %(date)s)", {"date": latest})
    with pytest.raises(InsidersError) as failure:
        build_marts(test_paths, target)  # nothing labelled since: the latest date is checked
    assert "relationships_stg_ml__customer_segments_run_id" in str(failure.value)
    assert "relationships_stg_ml__customer_forecasts_run_id" in str(failure.value)
