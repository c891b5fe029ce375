"""CLV models: the BG/NBD and Gamma-Gamma fits against published CDNOW estimates, and their predictions.

No database: the CDNOW summaries ship in tests/data (see its README); one test reads the real UCI file.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from insiders.forecast import clv
from insiders.forecast.clv import (
    BgNbdFit,
    GammaGammaFit,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    probability_alive,
)

DATA = Path(__file__).parent / "data"
# Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way": CDNOW, 2,357 customers, time in weeks
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_BGNBD_LOG_LIKELIHOOD = -9582.4
# Fader, Hardie & Lee (2005), "RFM and CLV": the 946 CDNOW customers with repeat purchases
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
# The paper's worked example: x = 2, t_x = 30.43, T = 38.86 weeks expects 1.226 purchases in the next 39 weeks
EXAMPLE = {"frequency": [2], "recency": [30.43], "age": [38.86]}


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_csv(DATA / "cdnow_customers_summary.csv")


@pytest.fixture(scope="module")
def cdnow_spend() -> pd.DataFrame:
    return pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")


@pytest.fixture(scope="module")
def cdnow_fit(cdnow: pd.DataFrame) -> BgNbdFit:
    return fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def _published_fit(**changes: float) -> BgNbdFit:
    fit = BgNbdFit(
        **PUBLISHED_BGNBD, log_likelihood=np.nan, converged=True, iterations=0, message="published", n_customers=2357
    )
    return dataclasses.replace(fit, **changes)


def _rfm(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return data["frequency"].to_numpy(), data["recency"].to_numpy(), data["T"].to_numpy()


# ---------------------------------------------------------------------------------------------------------------------
# BG/NBD fit


def test_bgnbd_reproduces_the_published_cdnow_estimates(cdnow_fit: BgNbdFit) -> None:
    assert cdnow_fit.converged, cdnow_fit.message
    assert cdnow_fit.n_customers == 2357
    for name, published in PUBLISHED_BGNBD.items():
        assert getattr(cdnow_fit, name) == pytest.approx(published, rel=0.02), name
    assert cdnow_fit.log_likelihood == pytest.approx(PUBLISHED_BGNBD_LOG_LIKELIHOOD, abs=0.1)


def test_bgnbd_parameters_come_back_in_the_callers_time_unit(cdnow: pd.DataFrame, cdnow_fit: BgNbdFit) -> None:
    frequency, recency, age = _rfm(cdnow)
    in_days = fit_bgnbd(frequency, recency * 7, age * 7)
    assert in_days.converged, in_days.message
    assert in_days.alpha == pytest.approx(cdnow_fit.alpha * 7, rel=1e-6)
    for name in ("r", "a", "b"):
        assert getattr(in_days, name) == pytest.approx(getattr(cdnow_fit, name), rel=1e-6), name
    # a density in purchase times: x * log(7) less per customer when the unit is 7 times smaller
    shift = frequency.sum() * np.log(7)
    assert in_days.log_likelihood == pytest.approx(cdnow_fit.log_likelihood - shift, abs=1e-6)


def test_fits_are_deterministic(cdnow: pd.DataFrame, cdnow_spend: pd.DataFrame) -> None:
    assert fit_bgnbd(*_rfm(cdnow)) == fit_bgnbd(*_rfm(cdnow))
    assert fit_gamma_gamma(cdnow_spend["x"], cdnow_spend["zbar"]) == fit_gamma_gamma(
        cdnow_spend["x"], cdnow_spend["zbar"]
    )


def _still_buying(n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers whose last purchase is at the end of their window: no sign of anyone dropping out."""
    rate = stats.gamma.ppf((np.arange(n) + 0.5) / n, 0.7, scale=1 / 10)
    age = 5 + 45 * ((np.arange(n) * 7) % n) / n
    frequency = np.floor(rate * age)
    return frequency, np.where(frequency > 0, age, 0.0), age


def test_bgnbd_maximum_on_the_no_dropout_boundary_is_the_nbd() -> None:
    frequency, recency, age = _still_buying()
    fit = fit_bgnbd(frequency, recency, age)
    assert fit.converged, fit.message
    assert (fit.a, fit.b) == (0.0, np.inf)
    assert "boundary" in fit.message
    assert np.all(probability_alive(fit, frequency, recency, age) == 1.0)
    # the NBD: (r + x) / (alpha + T) purchases per time unit
    expected = (fit.r + frequency) * 10 / (fit.alpha + age)
    np.testing.assert_allclose(expected_purchases(fit, frequency, recency, age, 10), expected, rtol=1e-12)


EXCLUDED_STOCK_CODES = ["POST", "D", "DOT", "M", "S", "AMAZONFEE", "m", "DCGSSBOY", "DCGSSGIRL", "PADS", "B", "CRUK"]


def _real_rfm(path: Path, cutoff: str) -> pd.DataFrame:
    """Frequency, recency and age in days of the real file's customers at `cutoff`, by the project's cleaning rules."""
    lines = pd.read_parquet(
        path, columns=["stockcode", "quantity", "invoicedate", "unitprice", "customerid", "country"]
    )
    lines = lines[
        lines["customerid"].notna()
        & (lines["customerid"] != 16446)
        & (lines["unitprice"] >= 0.04)
        & ~lines["stockcode"].isin(EXCLUDED_STOCK_CODES)
        & ~lines["country"].isin(["Unspecified", "European Community"])
        & (lines["quantity"] > 0)
    ]
    day = pd.to_datetime(lines["invoicedate"], format="%m/%d/%Y %H:%M").dt.normalize()
    days = pd.DataFrame({"customer": lines["customerid"], "day": day}).drop_duplicates()
    days = days[days["day"] <= pd.Timestamp(cutoff)]
    per_customer = days.groupby("customer")["day"].agg(["min", "max", "size"])
    return pd.DataFrame(
        {
            "frequency": per_customer["size"] - 1,
            "recency": (per_customer["max"] - per_customer["min"]).dt.days.astype(float),
            "T": (pd.Timestamp(cutoff) - per_customer["min"]).dt.days.astype(float),
        }
    )


@pytest.mark.parametrize("cutoff", ["2011-06-30", "2011-09-09"])
def test_bgnbd_converges_on_the_real_data(real_data: Path, cutoff: str) -> None:
    # lifetimes' BG/NBD does not converge here: the likelihood rises all the way to a/(a+b) = 0, the NBD
    frequency, recency, age = _rfm(_real_rfm(real_data, cutoff))
    in_days = fit_bgnbd(frequency, recency, age)
    in_weeks = fit_bgnbd(frequency, recency / 7, age / 7)
    for fit in (in_days, in_weeks):
        assert fit.converged, fit.message
        assert (fit.a, fit.b) == (0.0, np.inf)
    assert in_weeks.r == pytest.approx(in_days.r, rel=1e-6)
    assert in_weeks.alpha * 7 == pytest.approx(in_days.alpha, rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# BG/NBD predictions


def test_expected_purchases_of_the_papers_example() -> None:
    assert expected_purchases(_published_fit(), **EXAMPLE, horizon=39)[0] == pytest.approx(1.226, abs=5e-4)


def test_expected_purchases_agree_with_a_simulation() -> None:
    """Draw the purchase rate and drop-out probability of the example customer from their distributions given that
    history and alive, count purchases in the next 39 weeks (Poisson until a geometric drop-out), times P(alive)."""
    fit = _published_fit()
    x, t_x, age, horizon = 2, 30.43, 38.86, 39.0
    rng = np.random.default_rng(7)
    draws = 1_000_000
    rate = rng.gamma(fit.r + x, 1 / (fit.alpha + age), draws)
    dropout = rng.beta(fit.a, fit.b + x, draws)
    purchases = np.minimum(rng.poisson(rate * horizon), rng.geometric(dropout))
    alive = 1 / (1 + fit.a / (fit.b + x - 1) * ((fit.alpha + age) / (fit.alpha + t_x)) ** (fit.r + x))
    simulated = alive * purchases.mean()
    standard_error = alive * purchases.std() / np.sqrt(draws)
    assert expected_purchases(fit, [x], [t_x], [age], horizon)[0] == pytest.approx(simulated, abs=4 * standard_error)


def _eq10_hyp2f1(fit: BgNbdFit, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, t: float) -> np.ndarray:
    """Eq. 10 of the paper as printed, through scipy.special.hyp2f1."""
    r, alpha, a, b = fit.r, fit.alpha, fit.a, fit.b
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t))
    numerator = (a + b + x - 1) / (a - 1) * (1 - ((alpha + age) / (alpha + age + t)) ** (r + x) * hyp)
    return numerator / (1 + (x > 0) * a / (b + np.maximum(x, 1) - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x))


@pytest.mark.parametrize("horizon", [1.0, 39.0, 52.0])
def test_expected_purchases_match_eq10_where_hyp2f1_is_accurate(
    cdnow: pd.DataFrame, cdnow_fit: BgNbdFit, horizon: float
) -> None:
    frequency, recency, age = _rfm(cdnow)
    ours = expected_purchases(cdnow_fit, frequency, recency, age, horizon)
    np.testing.assert_allclose(ours, _eq10_hyp2f1(cdnow_fit, frequency, recency, age, horizon), rtol=1e-9)


def _expected_while_alive_by_quad(fit: BgNbdFit, x: int, age: float, t: float) -> float:
    """E[(1 - (1 + p tau)^-(r+x)) / p] for p ~ Beta(a, b + x), by adaptive quadrature cut around the mean of p."""
    tau, k, beta = t / (fit.alpha + age), fit.r + x, fit.b + x

    def integrand(p: float) -> float:
        log_density = (fit.a - 1) * np.log(p) + (beta - 1) * np.log1p(-p) - special.betaln(fit.a, beta)
        return -np.expm1(-k * np.log1p(p * tau)) / p * np.exp(log_density)

    mean = fit.a / (fit.a + beta)
    cuts = [0.0, *(mean * c for c in (0.1, 1, 3, 10, 30, 100, 1000) if mean * c < 1), 1.0]
    pieces = itertools.pairwise(cuts)
    return sum(integrate.quad(integrand, lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0] for lo, hi in pieces)


@pytest.mark.parametrize(
    ("a", "b", "x", "age", "horizon"),
    [
        (1.0, 3.0, 5, 10.0, 20.0),  # a = 1: eq. 10 is 0/0 (hyp2f1 route gives inf)
        (1.0000001, 1e4, 30, 30.0, 39.0),  # a near 1: the hyp2f1 route loses most digits
        (1.0, 1e6, 200, 1.0, 50.0),  # large b and x (hyp2f1 route: -inf)
        (0.5, 2.0, 500, 2.0, 100.0),  # large x and horizon (hyp2f1 route: nan)
        (5.0, 0.2, 1000, 0.5, 100.0),
    ],
)
def test_expected_purchases_stay_accurate_where_hyp2f1_fails(
    a: float, b: float, x: int, age: float, horizon: float
) -> None:
    fit = _published_fit(a=a, b=b)
    # a customer whose last purchase is at `age`: P(alive) is checked separately, here it is divided out
    ours = expected_purchases(fit, [x], [age], [age], horizon)[0] / probability_alive(fit, [x], [age], [age])[0]
    assert np.isfinite(ours)
    assert ours == pytest.approx(_expected_while_alive_by_quad(fit, x, age, horizon), rel=1e-9)


def test_expected_purchases_grow_with_the_horizon_from_zero(cdnow: pd.DataFrame, cdnow_fit: BgNbdFit) -> None:
    frequency, recency, age = _rfm(cdnow)
    assert np.all(expected_purchases(cdnow_fit, frequency, recency, age, 0.0) == 0.0)
    previous = np.zeros(len(frequency))
    for horizon in (0.5, 5.0, 39.0, 200.0, 5000.0):
        current = expected_purchases(cdnow_fit, frequency, recency, age, horizon)
        assert np.all(current > previous)
        previous = current


def test_expected_purchases_are_the_same_computed_once_per_distinct_age(
    cdnow: pd.DataFrame, cdnow_fit: BgNbdFit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Customers of the same frequency and age share their integrand: computing it once per distinct age (CDNOW's
    2,357 customers have 84) gives every figure to the last bit, the same as once per customer."""
    frequency, recency, age = _rfm(cdnow)
    assert len(np.unique(age)) < len(age) / 10
    once_per_age = [expected_purchases(cdnow_fit, frequency, recency, age, h) for h in (5.0, 39.0, 52.0)]
    monkeypatch.setattr(clv, "_distinct", lambda values: (values, np.arange(len(values))))
    once_per_customer = [expected_purchases(cdnow_fit, frequency, recency, age, h) for h in (5.0, 39.0, 52.0)]
    for fast, slow in zip(once_per_age, once_per_customer, strict=True):
        assert np.array_equal(fast, slow)


def test_fits_are_the_same_with_special_functions_once_per_distinct_frequency(
    cdnow: pd.DataFrame, cdnow_spend: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The likelihoods evaluate what depends on the frequency alone once per distinct frequency: the same
    estimates to the last bit as once per customer."""
    frequency, recency, age = _rfm(cdnow)
    spend = cdnow_spend[cdnow_spend["x"] > 0]
    once_per_value = (fit_bgnbd(frequency, recency, age), fit_gamma_gamma(spend["x"], spend["zbar"]))
    monkeypatch.setattr(clv, "_distinct", lambda values: (values, np.arange(len(values))))
    once_per_customer = (fit_bgnbd(frequency, recency, age),
                         fit_gamma_gamma(spend["x"], spend["zbar"]))
    assert once_per_value == once_per_customer


def test_probability_alive(cdnow_fit: BgNbdFit) -> None:
    assert probability_alive(cdnow_fit, [0, 0], [0.0, 0.0], [1.0, 38.0]).tolist() == [1.0, 1.0]
    # x > 0: below 1, and lower the longer the customer has been silent (T - t_x)
    silences = np.linspace(0.0, 38.0, 20)
    alive = probability_alive(cdnow_fit, np.full(20, 3), 38.0 - silences, np.full(20, 38.0))
    assert np.all(alive < 1) and np.all(alive > 0)
    assert np.all(np.diff(alive) < 0)
    # the closed form 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)) at the paper's example
    fit = _published_fit()
    odds = fit.a / (fit.b + 1) * ((fit.alpha + 38.86) / (fit.alpha + 30.43)) ** (fit.r + 2)
    assert probability_alive(fit, **EXAMPLE)[0] == pytest.approx(1 / (1 + odds), rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# Gamma-Gamma


def test_gamma_gamma_reproduces_the_published_cdnow_estimates(cdnow_spend: pd.DataFrame) -> None:
    fit = fit_gamma_gamma(cdnow_spend["x"], cdnow_spend["zbar"])
    assert fit.converged, fit.message
    assert fit.n_customers == 946  # the customers with repeat purchases
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        assert getattr(fit, name) == pytest.approx(published, rel=0.02), name


def test_gamma_gamma_parameters_come_back_in_the_callers_money_unit(cdnow_spend: pd.DataFrame) -> None:
    dollars = fit_gamma_gamma(cdnow_spend["x"], cdnow_spend["zbar"])
    cents = fit_gamma_gamma(cdnow_spend["x"], cdnow_spend["zbar"] * 100)
    assert cents.converged, cents.message
    assert (cents.p, cents.q, cents.v) == pytest.approx((dollars.p, dollars.q, dollars.v * 100), rel=1e-6)


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    p, q, v = 6.0, 4.0, 15.0
    rng = np.random.default_rng(20050801)
    n = 5000
    frequency = 1 + rng.poisson(2.0, n)
    nu = rng.gamma(q, 1 / v, n)  # each customer's scale: Gamma(q, rate v)
    monetary = rng.gamma(p * frequency, 1 / (frequency * nu))  # mean of x Gamma(p, rate nu) values
    fit = fit_gamma_gamma(frequency, monetary)
    assert fit.converged, fit.message
    # Over 40 seeds at this size the estimates spread (standard deviation) by 10% for p, 4% for q, 13% for v and
    # 1% for the mean spend p v / (q - 1): p and v are poorly identified apart with 1 to 8 purchases per customer,
    # their product well. The tolerances are about 3.5 of those spreads.
    assert fit.p == pytest.approx(p, rel=0.35)
    assert fit.q == pytest.approx(q, rel=0.14)
    assert fit.v == pytest.approx(v, rel=0.45)
    assert fit.p * fit.v / (fit.q - 1) == pytest.approx(p * v / (q - 1), rel=0.04)


def test_expected_spend() -> None:
    fit = GammaGammaFit(
        p=6.25, q=3.74, v=15.44, log_likelihood=np.nan, converged=True, iterations=0, message="", n_customers=946
    )
    population_mean = fit.p * fit.v / (fit.q - 1)
    spend = expected_spend(fit, [0, 0, 1, 5, 50], [0.0, 99.0, 100.0, 100.0, 100.0])
    assert spend[:2].tolist() == pytest.approx([population_mean, population_mean])  # frequency 0: monetary ignored
    # a weighted mean of the population mean and the customer's own, the more weight on its own the more purchases
    assert spend[2] == pytest.approx(fit.p * (fit.v + 100.0) / (fit.p + fit.q - 1))
    assert population_mean < spend[2] < spend[3] < spend[4] < 100.0
    assert np.isinf(expected_spend(dataclasses.replace(fit, q=0.9), [0], [0.0])[0])  # no finite mean


# ---------------------------------------------------------------------------------------------------------------------
# Input checks


@pytest.mark.parametrize(
    ("frequency", "recency", "age", "message"),
    [
        ([], [], [], "empty"),
        ([1, -1], [1.0, 0.0], [2.0, 2.0], "negative"),
        ([1], [-1.0], [2.0], "negative"),
        ([1], [3.0], [2.0], "recency exceeds age"),
        ([1.5], [1.0], [2.0], "whole numbers"),
        ([0], [1.0], [2.0], "recency must be 0"),
        ([1, 2], [1.0], [2.0, 2.0], "differ in length"),
        ([1], [np.nan], [2.0], "missing or infinite"),
        ([0, 0], [0.0, 0.0], [0.0, 0.0], "age 0"),
    ],
)
def test_bgnbd_rejects_bad_input(frequency: list, recency: list, age: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_bgnbd(frequency, recency, age)


def test_predictions_reject_bad_input(cdnow_fit: BgNbdFit) -> None:
    with pytest.raises(ValueError, match="horizon"):
        expected_purchases(cdnow_fit, [1], [1.0], [2.0], -1.0)
    with pytest.raises(ValueError, match="recency exceeds age"):
        probability_alive(cdnow_fit, [1], [3.0], [2.0])


@pytest.mark.parametrize(
    ("frequency", "monetary", "message"),
    [
        ([], [], "empty"),
        ([0, 0], [0.0, 0.0], "no customer has frequency > 0"),
        ([1, 2], [10.0, -5.0], "negative"),
        ([1, 2], [10.0, 0.0], "monetary must be positive"),
        ([1, 2], [10.0], "differ in length"),
    ],
)
def test_gamma_gamma_rejects_bad_input(frequency: list, monetary: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_gamma_gamma(frequency, monetary)


def test_expected_purchases_do_not_depend_on_the_customers_order(cdnow: pd.DataFrame, cdnow_fit: BgNbdFit) -> None:
    """The same customers in another order get the same figures to the last bit (the rows of a read come in the
    order PostgreSQL returns them): each distinct age's integral is summed on its own, not by a matrix product
    whose summation order depends on a row's position."""
    frequency, recency, age = _rfm(cdnow)
    in_file_order = expected_purchases(cdnow_fit, frequency, recency, age, 39.0)
    shuffled = np.random.default_rng(7).permutation(len(frequency))
    assert np.array_equal(
        expected_purchases(cdnow_fit, frequency[shuffled], recency[shuffled], age[shuffled], 39.0),
        in_file_order[shuffled])
