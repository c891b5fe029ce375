"""`insiders backfill`: features, segments, forecasts and Insiders for every month-end in a range, point in time."""

from __future__ import annotations

import calendar
import logging
import time
from datetime import date, timedelta

from . import db, stages
from .cluster.config import ClusterConfig
from .cluster.job import run_clustering
from .errors import InsidersError
from .program.config import ProgramConfig
from .progress import StageTimer
from .settings import Paths, Target
from .warehouse import PostgresWarehouse

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


def backfill(paths: Paths, target: Target, dates: list[date], *, refit: bool = False,
             config: ClusterConfig | None = None, program: ProgramConfig | None = None) -> None:
    """Labels for every date in order, each with the model in force at that date: a fit at the first date (on
    data up to it) unless one fitted on earlier data exists, then the refit policy (a new fit when the model's
    data is `refit_every_months` old). No date is ever labelled by a model that saw later lines.

    Set-based where the work is: every date's features in one dbt statement, each inner backtest measured once
    for all the dates that read it, and one dbt build of the segment marts at the end (membership history is a
    gaps-and-islands model over all labelled dates, not a replay date by date)."""
    timer = StageTimer()
    started = time.perf_counter()
    program = program or ProgramConfig()
    with timer.stage(f"features for {len(dates)} as-of dates") as stage:
        # dates built before lines loaded since are restated (late lines dated inside the range count)
        built = stages.build_features(paths, target, dates, program, rebuild=dates)
        stage.note = f"{len(built)} built (with their inner backtests' cutoffs), the others kept as they were"
    with timer.stage("segments, forecasts and Insiders") as stage, db.connect(target) as conn:
        fits = 0
        for i, day in enumerate(sorted(dates)):
            result = run_clustering(PostgresWarehouse(conn), paths, as_of=day, refit=refit and i == 0, config=config,
                                    program=program)
            fits += result.mode == "fit"
            log.info("  %s: %s with the model %s; %d Insiders by %s", day, result.mode,
                     "fitted now" if result.mode == "fit" else "in force", result.n_insiders,
                     result.insider_definition)
        stage.note = f"{len(dates)} as-of dates labelled, {fits} model{'s' if fits != 1 else ''} fitted"
    with timer.stage("dbt build (segment marts and membership history)"):
        stages.build_marts(paths, target)  # current: the latest date labelled, whatever the range
    log.info("backfilled %d as-of dates (%s to %s) in %.1f s", len(dates), dates[0], dates[-1],
             time.perf_counter() - started)


def parse_range(start: date, end: date | None, monthly: bool) -> list[date]:
    end = end or date.today() - timedelta(days=1)
    return month_ends(start, end) if monthly else sorted({start, end})
