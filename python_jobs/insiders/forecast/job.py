"""Spend forecast per customer at an as-of date: BG/NBD for purchase days, Gamma-Gamma for spend per day.

Both models are fitted on the CLV statistics of the feature mart at that date only (point in time). Time is in
weeks inside the models, the unit of the published CDNOW estimates; horizons are given in days.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import clv

log = logging.getLogger("insiders")
DAYS_PER_WEEK = 7.0
HORIZONS_DAYS = (90, 365)


def horizons_with(horizon_days: int) -> tuple[int, ...]:
    """The published horizons and the one a program is judged on."""
    return tuple(sorted({*HORIZONS_DAYS, horizon_days}))


@dataclass
class Forecast:
    """Per customer: probability alive, expected purchase days and revenue; the fitted estimates beside it."""

    customers: pd.DataFrame
    estimates: dict[str, object] = field(default_factory=dict)

    def expected_revenue(self, horizon_days: int) -> np.ndarray:
        return self.customers[f"expected_revenue_{horizon_days}d"].to_numpy(dtype=float)

    def calibrated(self, factor: float, note: str) -> Forecast:
        """The same forecast with every expected revenue multiplied by `factor` (purchase counts unchanged)."""
        customers = self.customers.copy()
        for column in [c for c in customers if c.startswith("expected_revenue_")]:
            customers[column] = customers[column] * factor
        return Forecast(customers, {**self.estimates, "revenue_calibration": {"factor": factor, "note": note}})


def revenue_calibration(earlier: pd.DataFrame, actual_gross: pd.Series, horizon_days: int) -> float:
    """Actual / forecast revenue of the window that ends at the as-of date, forecast from its start: the models
    assume spend and purchase rates that do not change, and this factor carries the recent level (a growing
    shop, bigger baskets) into the next horizon. `earlier` is the mart at the window's start, `actual_gross` the
    gross purchases in the window by customer id."""
    predicted = forecast_customers(earlier, (horizon_days,)).expected_revenue(horizon_days)
    actual = earlier["customer_id"].map(actual_gross).fillna(0.0).to_numpy(dtype=float)
    return float(actual.sum() / predicted.sum()) if predicted.sum() > 0 else 1.0


def forecast_customers(features: pd.DataFrame, horizons_days: tuple[int, ...] = HORIZONS_DAYS) -> Forecast:
    """The forecast for every customer of `features` (one as-of date of the mart). A shop too young for a model (no
    repeat purchase yet, or every customer first seen on the as-of date) gets the plainest forecast that data
    allows, and the estimates say why."""
    frequency = features["clv_frequency"].to_numpy(dtype=float)
    recency = features["clv_recency"].to_numpy(dtype=float) / DAYS_PER_WEEK
    age = features["clv_t"].to_numpy(dtype=float) / DAYS_PER_WEEK
    monetary = features["clv_monetary"].astype(float).to_numpy()
    estimates: dict[str, object] = {"n_customers": len(features)}
    repeaters = (frequency > 0) & (monetary > 0)
    estimates["n_repeat_customers"] = int(repeaters.sum())
    observed_per_day = features["gross_revenue"].astype(float).sum() / max(features["n_purchase_days"].sum(), 1)
    try:
        spend = clv.fit_gamma_gamma(frequency[repeaters], monetary[repeaters])
        spend_per_day = clv.expected_spend(spend, frequency, np.where(repeaters, monetary, 0.0))
        # q <= 1: the model's population mean does not exist; customers without repeat days get the observed one
        spend_per_day = np.where(np.isfinite(spend_per_day), spend_per_day, observed_per_day)
        estimates["gamma_gamma"] = {"p": spend.p, "q": spend.q, "v": spend.v,
                                    "log_likelihood": spend.log_likelihood, "converged": spend.converged}
        _warn_unless_converged("Gamma-Gamma", spend)
    except ValueError as exc:  # no repeat purchases yet: every customer spends what customers spend per day
        spend_per_day = np.full(len(features), observed_per_day)
        estimates["gamma_gamma"] = {"not_fitted": str(exc), "spend_per_purchase_day": observed_per_day}
    try:
        purchases = clv.fit_bgnbd(frequency, recency, age)
        alive = clv.probability_alive(purchases, frequency, recency, age)
        estimates["bgnbd"] = {"r": purchases.r, "alpha_weeks": purchases.alpha, "a": purchases.a, "b": purchases.b,
                              "log_likelihood": purchases.log_likelihood, "converged": purchases.converged}
        _warn_unless_converged("BG/NBD", purchases)
    except ValueError as exc:  # no time observed yet: no purchase rate to learn, so none is forecast
        purchases, alive = None, np.ones(len(features))
        estimates["bgnbd"] = {"not_fitted": str(exc)}
        log.warning("no spend forecast at this date: %s", exc)
    customers = pd.DataFrame({"customer_id": features["customer_id"].astype("int64").to_numpy(), "p_alive": alive})
    for days in horizons_days:
        expected = clv.expected_purchases(purchases, frequency, recency, age, days / DAYS_PER_WEEK) \
            if purchases is not None else np.zeros(len(features))
        customers[f"expected_purchases_{days}d"] = expected
        customers[f"expected_revenue_{days}d"] = expected * spend_per_day
    return Forecast(customers, estimates)


def _warn_unless_converged(name: str, fit: object) -> None:
    if not fit.converged:
        log.warning("the %s fit of the spend forecast did not converge (%s); its estimates are in ml.model_runs",
                    name, fit.message)
