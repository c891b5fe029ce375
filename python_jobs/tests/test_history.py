"""History is kept: a plain `dbt build --full-refresh` leaves the feature and segment history as it was (the segment
mart, the summary and the transitions, built by date, hold what a rebuild from the labels gives), and the
membership history covers every labelled date whatever order the dates were labelled in."""

from __future__ import annotations

import psycopg

from insiders.backfill import backfill
from insiders.dbt_runner import run_dbt

from .support import LABELLED_DATES, QUICK_PROGRAM

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
    # the README's order: the latest date first (what `insiders run` labels), then a backfill of earlier dates, here
    # in two steps so that the marts kept by date and by pair of dates take in a date before every other, then one
    # between two others (the pair that spanned it is replaced) with the latest labelled again
    backfill(test_paths, target, [latest], program=QUICK_PROGRAM)
    backfill(test_paths, target, [first], program=QUICK_PROGRAM)
    backfill(test_paths, target, [middle, latest], program=QUICK_PROGRAM)
    before = _read(target, HISTORY)
    assert before[0] >= len(LABELLED_DATES) and before[2] > 0
    assert _read(target, UNCOVERED_LABELS) == (0,)
    # the last backfill labelled the latest date again: its rows were replaced, the earlier dates' added
    assert _read(target, NOT_FROM_LATEST_RUN) == (0,)
    labelled_dates = _read(target, "select count(distinct as_of_date) from marts.fct_customer_segments")[0]
    assert labelled_dates == len(LABELLED_DATES)

    # the summary and the transitions, built by date and by pair, are what a rebuild from the labels gives
    assert run_dbt(test_paths, target, ["build", "--full-refresh"], check=False, quiet=True) == 0
    assert _read(target, HISTORY) == before
    assert _read(target, UNCOVERED_LABELS) == (0,)
