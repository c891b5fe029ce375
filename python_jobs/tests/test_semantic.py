"""The semantic layer: MetricFlow's answers (`insiders mf`) against SQL on the marts, on demo data labelled at two
as-of dates."""

from __future__ import annotations

import csv
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from insiders.backfill import backfill
from insiders.cli import main
from insiders.semantic import run_mf

from .support import QUICK_PROGRAM

AS_OF_DATES = [date(2011, 10, 31), date(2011, 12, 9)]
# the marts store shares and rates as numeric(8,6) and numeric(12,6): half a unit in the sixth decimal
RATIO_ROUNDING = 5e-7
MONEY_ROUNDING = Decimal("0.005")


@pytest.fixture(scope="module")
def labelled(new_database, demo_template, test_paths):
    """Demo data with segments, forecasts and Insiders at two as-of dates, and the segment marts built."""
    target = new_database(template=demo_template)
    backfill(test_paths, target, AS_OF_DATES, program=QUICK_PROGRAM)
    return target


def mf_query(paths, target, tmp_path: Path, *args: str) -> list[dict[str, str]]:
    """`mf query ARGS` as CSV rows."""
    out = tmp_path / f"mf_{uuid.uuid4().hex[:8]}.csv"
    result = run_mf(paths, target, ["query", *args, "--csv", str(out), "--quiet"], quiet=True)
    assert result.returncode == 0, result.stdout
    with out.open(newline="") as file:
        return list(csv.DictReader(file))


def by_date(rows: list[dict[str, str]], column: str = "metric_time__day") -> dict[date, dict[str, str]]:
    return {date.fromisoformat(row[column][:10]): row for row in rows}


def query(target, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(target.url) as conn:
        return conn.execute(sql, params).fetchall()


def test_the_semantic_layer_validates_against_the_database(labelled, test_paths):
    result = run_mf(test_paths, labelled, ["validate-configs"], quiet=True)
    assert result.returncode == 0, result.stdout
    assert "Successfully validated semantic models against data warehouse" in result.stdout


def test_insiders_revenue_share_by_as_of_date_is_the_marts_ratio_of_sums(labelled, test_paths, tmp_path):
    answer = by_date(mf_query(test_paths, labelled, tmp_path, "--saved-query", "insiders_revenue_share_by_as_of_date"))
    assert sorted(answer) == AS_OF_DATES
    mart = {row[0]: row[1:] for row in query(labelled, """
        select as_of_date, gross_revenue_share, n_customers
        from marts.fct_segment_summary where segment_id = -1""")}
    sums = {row[0]: row[1:] for row in query(labelled, """
        select as_of_date, sum(gross_revenue) filter (where is_insider), sum(gross_revenue), count(*)
        from marts.fct_customer_segments group by as_of_date""")}
    for as_of, row in answer.items():
        share = float(row["insiders_revenue_share"])
        assert share == pytest.approx(float(mart[as_of][0]), abs=RATIO_ROUNDING), as_of
        insiders_revenue, revenue, customers = sums[as_of]
        assert share == pytest.approx(float(insiders_revenue / revenue), rel=1e-9), as_of
        assert int(row["insiders"]) == mart[as_of][1]
        assert int(row["customers"]) == customers
        assert abs(Decimal(row["gross_revenue"]) - revenue) <= MONEY_ROUNDING


def test_segment_sizes_revenue_forecast_and_return_rate_match_the_summary(labelled, test_paths, tmp_path):
    answer = {(date.fromisoformat(row["metric_time__day"][:10]), row["customer_as_of__segment_name"]): row
              for row in mf_query(test_paths, labelled, tmp_path, "--saved-query", "segment_sizes_and_revenue")}
    mart = query(labelled, """
        select as_of_date, segment_name, n_customers, n_insiders, gross_revenue, net_revenue, expected_revenue_90d,
               return_rate
        from marts.fct_segment_summary where not is_insider""")
    assert sorted(answer) == sorted((row[0], row[1]) for row in mart)
    for as_of, name, customers, insiders, gross, net, expected, return_rate in mart:
        row = answer[(as_of, name)]
        assert (int(row["customers"]), int(row["insiders"])) == (customers, insiders)
        assert abs(Decimal(row["gross_revenue"]) - gross) <= MONEY_ROUNDING
        assert abs(Decimal(row["net_revenue"]) - net) <= MONEY_ROUNDING
        assert abs(Decimal(row["expected_revenue_90d"]) - expected) <= MONEY_ROUNDING
        assert float(row["return_rate"]) == pytest.approx(float(return_rate), abs=RATIO_ROUNDING)


def test_figures_at_a_date_are_read_at_one_as_of_date_not_summed_over_dates(labelled, test_paths, tmp_path):
    """Revenue to date and customers are stocks: with no time grouping the answer is the latest as-of date's,
    and grouped by month, the month's last as-of date's."""
    latest = query(labelled, """
        select count(*), sum(gross_revenue) from marts.fct_customer_segments
        where as_of_date = (select max(as_of_date) from marts.fct_customer_segments)""")[0]
    [overall] = mf_query(test_paths, labelled, tmp_path, "--metrics", "customers,gross_revenue")
    assert int(overall["customers"]) == latest[0]
    assert abs(Decimal(overall["gross_revenue"]) - latest[1]) <= MONEY_ROUNDING
    monthly = by_date(mf_query(test_paths, labelled, tmp_path, "--metrics", "customers",
                               "--group-by", "metric_time__month"), "metric_time__month")
    assert {month: int(row["customers"]) for month, row in monthly.items()} == {
        day.replace(day=1): count for day, count in query(
            labelled, "select as_of_date, count(*) from marts.fct_customer_segments group by 1")}


@pytest.fixture(scope="module")
def insider_moves(labelled, test_paths, tmp_path_factory) -> dict[date, dict[str, str]]:
    """The saved query `insider_moves` through `insiders mf`, which reaches the configured database by itself."""
    out = tmp_path_factory.mktemp("mf") / "moves.csv"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSIDERS_DSN", labelled.url)
        patch.setenv("INSIDERS_STATE_DIR", str(test_paths.state_dir))
        assert main(["mf", "query", "--saved-query", "insider_moves", "--csv", str(out), "--quiet"]) == 0
    with out.open(newline="") as file:
        return by_date(list(csv.DictReader(file)))


def test_segment_moves_count_every_customer_whose_segment_changed(labelled, insider_moves):
    """Arrivals and departures included, against the customers' segments at consecutive as-of dates."""
    expected = query(labelled, """
        with segments as (
            select customer_id, as_of_date, segment_id from marts.fct_customer_segments
        ),
        pairs as (
            select as_of_date, previous_date
            from (
                select as_of_date, lag(as_of_date) over (order by as_of_date) as previous_date
                from (select distinct as_of_date from segments) as labelled_dates
            ) as dates
            where previous_date is not null
        ),
        arrivals_and_changes as (
            select pairs.as_of_date
            from pairs
            inner join segments as later on later.as_of_date = pairs.as_of_date
            left join segments as earlier
                on earlier.as_of_date = pairs.previous_date and earlier.customer_id = later.customer_id
            where earlier.segment_id is distinct from later.segment_id
        ),
        departures as (
            select pairs.as_of_date
            from pairs
            inner join segments as earlier on earlier.as_of_date = pairs.previous_date
            left join segments as later
                on later.as_of_date = pairs.as_of_date and later.customer_id = earlier.customer_id
            where later.customer_id is null
        )
        select as_of_date, count(*)
        from (select * from arrivals_and_changes union all select * from departures) as moves
        group by as_of_date""")
    assert sorted(insider_moves) == AS_OF_DATES[1:]
    assert {day: int(row["segment_moves"]) for day, row in insider_moves.items()} == dict(expected)


def test_moves_into_and_out_of_the_insiders_count_customers(labelled, insider_moves):
    expected = query(labelled, """
        with flagged as (
            select as_of_date, is_insider,
                   lag(is_insider) over (partition by customer_id order by as_of_date) as was_insider
            from marts.fct_customer_segments
        )
        select as_of_date,
               count(*) filter (where is_insider and not coalesce(was_insider, false)),
               count(*) filter (where not is_insider and was_insider)
        from flagged
        where as_of_date > (select min(as_of_date) from marts.fct_customer_segments)
        group by as_of_date""")
    assert {day: (int(row["insiders_entered"]), int(row["insiders_left"])) for day, row in insider_moves.items()} == {
        day: (entered, left) for day, entered, left in expected}
