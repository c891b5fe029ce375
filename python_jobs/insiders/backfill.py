"""`insiders backfill`: features and segments for every month-end in a range, one model fit then scoring."""

from __future__ import annotations

import calendar
import json
import logging
from datetime import date, timedelta

from . import db
from .cluster.job import run_clustering
from .dbt_runner import run_dbt
from .errors import InsidersError
from .progress import StageTimer
from .settings import Paths, Target

log = logging.getLogger("insiders")


def month_ends(start: date, end: date) -> list[date]:
    """Every month-end from `start`'s month to `end`, and `end` itself when it is not a month-end."""
    if start > end:
        raise InsidersError(f"--from {start} is after --to {end}")
    dates, year, month = [], start.year, start.month
    while True:
        last = date(year, month, calendar.monthrange(year, month)[1])
        if last > end:
            break
        if last >= start:
            dates.append(last)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    if not dates or dates[-1] != end:
        dates.append(end)
    return dates


def _as_of(day: date) -> list[str]:
    return ["--vars", json.dumps({"as_of_date": day.isoformat()})]


def backfill(paths: Paths, target: Target, dates: list[date], *, refit: bool = False) -> None:
    """Features for every date, one fit (on the last date, the most data) unless a model exists, scoring for the
    rest, then the segment marts and one snapshot per date so that membership history has its validity dates."""
    timer = StageTimer()
    with timer.stage(f"features for {len(dates)} as-of dates"):
        for i, day in enumerate(dates):
            # the views upstream need creating once; after that only the incremental model runs
            selector = "+fct_customer_features" if i == 0 else "fct_customer_features"
            run_dbt(paths, target, ["run", "--select", selector, *_as_of(day)], quiet=True)
            log.info("  features as of %s", day)
    with timer.stage("segments"), db.connect(target) as conn:
        from .cluster import store

        store.ensure_ml_schema(conn)
        conn.commit()
        has_model = store.latest_fit(conn) is not None
        if refit or not has_model:
            run_clustering(conn, paths, as_of=dates[-1], refit=True)
            to_score = dates[:-1]
        else:
            to_score = dates
        for day in to_score:
            run_clustering(conn, paths, as_of=day)
    with timer.stage("segment marts and membership history"):
        run_dbt(paths, target, ["run", "--select", "source:ml+,+fct_customer_segments"], quiet=True)
        # each as-of date's current state goes through the snapshot in order, which dates the segment changes
        for day in dates:
            run_dbt(paths, target, ["build", "--select", "dim_customers", "snp_customer_segments", *_as_of(day)],
                    quiet=True)
        # upstream of the feature mart nothing changed: test the mart and everything downstream of the segments
        run_dbt(paths, target, ["build", "--select", "fct_customer_features", "source:ml+"], quiet=True)
    log.info("backfilled %d as-of dates (%s to %s); timings: %s", len(dates), dates[0], dates[-1],
             ", ".join(f"{k} {v:.0f} s" for k, v in timer.timings.items()))


def parse_range(start: date, end: date | None, monthly: bool) -> list[date]:
    end = end or date.today() - timedelta(days=1)
    return month_ends(start, end) if monthly else sorted({start, end})
