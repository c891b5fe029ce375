"""History is kept: a plain `dbt build --full-refresh` leaves the feature and segment history as it was (the segment
mart, built date by date, holds what a rebuild from the labels gives), and the membership history covers every
labelled date whatever order the dates were labelled in."""

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
         from marts.fct_customer_segments as labels)
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
    latest, earlier = LABELLED_DATES[-1], LABELLED_DATES[:-1]
    # the README's order: the latest date first (what `insiders run` labels), then a backfill of earlier dates
    backfill(test_paths, target, [latest], program=QUICK_PROGRAM)
    backfill(test_paths, target, [*earlier, latest], program=QUICK_PROGRAM)
    before = _read(target, HISTORY)
    assert before[0] >= len(LABELLED_DATES) and before[2] > 0
    assert _read(target, UNCOVERED_LABELS) == (0,)
    # the second backfill labelled the latest date again: its rows were replaced, the earlier dates' added
    assert _read(target, NOT_FROM_LATEST_RUN) == (0,)
    labelled_dates = _read(target, "select count(distinct as_of_date) from marts.fct_customer_segments")[0]
    assert labelled_dates == len(LABELLED_DATES)

    assert run_dbt(test_paths, target, ["build", "--full-refresh"], check=False, quiet=True) == 0
    assert _read(target, HISTORY) == before
    assert _read(target, UNCOVERED_LABELS) == (0,)
