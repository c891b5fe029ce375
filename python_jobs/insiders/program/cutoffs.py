"""The dates a run reads: the month-end cutoffs of the Insider choice's inner backtests and of the recent window
that trains the model and calibrates the forecast. Pure date arithmetic, kept apart from program.choice so that
the stages can ask which feature dates to build without importing scikit-learn, SciPy and the forecast."""

from __future__ import annotations

from datetime import date, timedelta

from .config import ProgramConfig


def month_end_on_or_before(day: date) -> date:
    next_month_first = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    last = next_month_first - timedelta(days=1)
    return last if last <= day else day.replace(day=1) - timedelta(days=1)


def inner_cutoffs(as_of: date, data_start: date, config: ProgramConfig) -> list[date]:
    """The latest month-end whose horizon ends by the as-of date, and the month-ends before it."""
    cutoffs = [month_end_on_or_before(as_of - timedelta(days=config.horizon_days))]
    while len(cutoffs) < config.inner_cutoffs:
        cutoffs.append(month_end_on_or_before(cutoffs[-1].replace(day=1) - timedelta(days=1)))
    return sorted(c for c in cutoffs if (c - data_start).days >= config.min_history_days)


def training_cutoff(day: date, data_start: date, config: ProgramConfig) -> date | None:
    """Where the window the trained model learns from and the forecast is calibrated on starts, for scoring at
    `day`: the latest month-end whose horizon ends by `day` (shared by every date of a month), if there is enough
    history before it."""
    start = month_end_on_or_before(day - timedelta(days=config.horizon_days))
    return start if (start - data_start).days >= config.min_history_days else None


def required_dates(as_of: date, data_start: date, config: ProgramConfig) -> list[date]:
    """Every as-of date of the feature mart that the run at `as_of` reads."""
    days = {as_of, *inner_cutoffs(as_of, data_start, config)}
    days |= {start for day in list(days) if (start := training_cutoff(day, data_start, config))}
    return sorted(days)
