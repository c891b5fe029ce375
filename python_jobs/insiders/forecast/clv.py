"""Customer lifetime value: BG/NBD repeat purchases and Gamma-Gamma spend, fitted by maximum likelihood.

References:
- Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to the Pareto/NBD Model",
  Marketing Science 24(2), 275-284 (BG/NBD: parameters r, alpha, a, b).
- Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
  Journal of Marketing Research 42(4), 415-430 (Gamma-Gamma spend model: parameters p, q, v).

Per customer, in one time unit chosen by the caller (days, weeks...):
- frequency x: number of repeat purchases, i.e. purchase occasions after the first one;
- recency t_x: time from the first to the last purchase (0 when x is 0);
- age T: time from the first purchase to the end of the observation window.

Both fits maximise the log-likelihood over log-parameters with L-BFGS-B and analytic gradients, on internally
rescaled data (mean age 1, mean spend 1), then polish with Newton steps on a finite-difference Hessian of the
analytic gradient. Parameters are returned in the caller's units: alpha scales with the time unit and v with the
money unit; r, a, b, p and q are unit-free. On some data (the UCI Online Retail file at every month end of 2011 but
the last) the BG/NBD likelihood rises all the way to a mean drop-out probability of 0: fit_bgnbd then returns that
boundary, the NBD model, as a = 0 and b = inf, after checking that it is the maximum.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import linalg, optimize, special

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Objective = Callable[[FloatArray], tuple[float, FloatArray]]

# Log-parameters are searched in [-_LOG_BOUND, _LOG_BOUND] on the rescaled data; a fit that ends on a bound is a
# parameter running off to 0 or infinity, and is reported as not converged.
_LOG_BOUND = 15.0
_BOUND_MARGIN = 1e-6
# Largest absolute gradient of the mean negative log-likelihood (per customer, per log-parameter) accepted as a maximum.
_GRADIENT_TOLERANCE = 1e-6
# A gradient this small after the Newton steps is rounding level: the optimum is reached even if L-BFGS-B gave up.
_POLISHED_GRADIENT = 1e-10
_NEWTON_STEPS = 20
_HESSIAN_STEP = 1e-5

# Quadrature for the conditional expectation of the BG/NBD (see _expected_while_alive).
_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(12)
_TAIL_PROBABILITY = 1e-10
_LEVEL_DROP = 50.0
_MAX_PANELS = 5000


@dataclass(frozen=True)
class BgNbdFit:
    """BG/NBD parameters in the caller's time unit.

    Purchase rates are Gamma(r, alpha) across customers (mean r / alpha purchases per time unit); after each purchase a
    customer drops out with a probability that is Beta(a, b) across customers. a = 0 and b = inf stand for the limit
    where that probability is 0 for everyone (the NBD model), which is where some data sets have their maximum.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    converged: bool
    iterations: int
    message: str
    n_customers: int


@dataclass(frozen=True)
class GammaGammaFit:
    """Gamma-Gamma parameters in the caller's money unit (v scales with it; p and q are unit-free).

    Transaction values are Gamma(p, nu) for each customer, and nu is Gamma(q, v) across customers: the population
    mean transaction value is p * v / (q - 1), finite only when q > 1.
    """

    p: float
    q: float
    v: float
    log_likelihood: float
    converged: bool
    iterations: int
    message: str
    n_customers: int


# ---------------------------------------------------------------------------------------------------------------------
# Input checks


def _vector(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric: {error}") from error
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one customer is needed")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains missing or infinite values")
    if np.any(array < 0):
        raise ValueError(f"{name} contains negative values (smallest {array.min():g})")
    return array


def _frequency(values: npt.ArrayLike) -> FloatArray:
    frequency = _vector("frequency", values)
    if np.any(frequency != np.round(frequency)):
        raise ValueError("frequency must hold whole numbers of repeat purchases")
    return frequency


def _same_length(**arrays: FloatArray) -> None:
    lengths = {name: array.size for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs differ in length: {lengths}")


def _rfm(
    frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = _frequency(frequency)
    t_x = _vector("recency", recency)
    age_ = _vector("age", age)
    _same_length(frequency=x, recency=t_x, age=age_)
    if np.any(t_x > age_):
        raise ValueError(f"recency exceeds age for {int(np.sum(t_x > age_))} customer(s)")
    if np.any((x == 0) & (t_x != 0)):
        raise ValueError(f"recency must be 0 where frequency is 0 ({int(np.sum((x == 0) & (t_x != 0)))} customer(s))")
    return x, t_x, age_


def _horizon(horizon: float) -> float:
    value = float(horizon)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"horizon must be a finite non-negative number, got {horizon!r}")
    return value


# ---------------------------------------------------------------------------------------------------------------------
# Optimisation shared by both models


@dataclass(frozen=True)
class _Optimum:
    theta: FloatArray
    objective: float
    converged: bool
    iterations: int
    message: str


def _hessian(objective: Objective, theta: FloatArray) -> FloatArray:
    """Central differences of the analytic gradient, symmetrised."""
    size = theta.size
    hessian = np.empty((size, size))
    for i in range(size):
        step = np.zeros(size)
        step[i] = _HESSIAN_STEP
        hessian[:, i] = (objective(theta + step)[1] - objective(theta - step)[1]) / (2 * _HESSIAN_STEP)
    return (hessian + hessian.T) / 2


def _positive_definite(matrix: FloatArray) -> bool:
    if not np.all(np.isfinite(matrix)):
        return False
    try:
        linalg.cho_factor(matrix)
    except linalg.LinAlgError:
        return False
    return True


def _newton_polish(objective: Objective, theta: FloatArray) -> tuple[FloatArray, int]:
    """Newton steps with backtracking; stops when the Hessian is not positive definite or no step improves."""
    value, gradient = objective(theta)
    steps = 0
    for _ in range(_NEWTON_STEPS):
        if np.max(np.abs(gradient)) < 1e-12:
            break
        hessian = _hessian(objective, theta)
        if not _positive_definite(hessian):
            break
        direction = -linalg.cho_solve(linalg.cho_factor(hessian), gradient)
        slope = float(gradient @ direction)
        length = 1.0
        while length > 1e-6:
            candidate = np.clip(theta + length * direction, -_LOG_BOUND, _LOG_BOUND)
            candidate_value, candidate_gradient = objective(candidate)
            decrease_ok = candidate_value <= value + 1e-4 * length * slope
            # at the optimum the objective is flat to rounding: accept a step that shrinks the gradient instead
            flat_ok = candidate_value <= value + 1e-13 * max(1.0, abs(value)) and np.max(
                np.abs(candidate_gradient)
            ) < np.max(np.abs(gradient))
            if np.isfinite(candidate_value) and (decrease_ok or flat_ok):
                break
            length /= 2
        else:
            break
        theta, value, gradient = candidate, candidate_value, candidate_gradient
        steps += 1
    return theta, steps


def _maximise(objective: Objective, start: FloatArray, names: tuple[str, ...]) -> _Optimum:
    """Minimise a mean negative log-likelihood over log-parameters and judge whether it reached a maximum.

    L-BFGS-B from `start`, then Newton polishing. The optimisation succeeded if L-BFGS-B reported success, or if it
    stopped on a failed line search (rounding near the optimum) and the Newton steps then brought the gradient to
    rounding level. The fit converged if it succeeded, the gradient is small, no parameter is on the search bound and
    the Hessian is positive definite.
    """
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * start.size,
        options={"maxiter": 2000, "maxcor": 20, "ftol": 1e-12, "gtol": 1e-8},
    )
    theta, newton_steps = _newton_polish(objective, np.asarray(result.x, dtype=np.float64))
    value, gradient = objective(theta)
    largest_gradient = float(np.max(np.abs(gradient)))
    at_bound = [name for name, t in zip(names, theta, strict=True) if abs(t) >= _LOG_BOUND - _BOUND_MARGIN]
    curved = _positive_definite(_hessian(objective, theta))
    problems = []
    if not (result.success or largest_gradient < _POLISHED_GRADIENT):
        problems.append(f"optimizer failed: {result.message}")
    if not np.isfinite(value) or largest_gradient > _GRADIENT_TOLERANCE:
        problems.append(f"gradient not small (largest {largest_gradient:.2e})")
    if at_bound:
        problems.append(f"parameter(s) at the search bound: {', '.join(at_bound)}")
    if not curved:
        problems.append("Hessian not positive definite: not a strict maximum")
    message = "; ".join(problems) if problems else f"converged (largest gradient {largest_gradient:.1e})"
    logger.debug(
        "L-BFGS-B: %s after %d iterations; %d Newton steps; %s", result.message, result.nit, newton_steps, message
    )
    return _Optimum(
        theta=theta,
        objective=float(value),
        converged=not problems,
        iterations=int(result.nit) + newton_steps,
        message=message,
    )


# ---------------------------------------------------------------------------------------------------------------------
# BG/NBD


def _bgnbd_objective(x: FloatArray, t_x: FloatArray, age: FloatArray) -> Objective:
    """Mean negative log-likelihood of the BG/NBD (eq. 6 of the paper) and its gradient in log-parameters."""
    repeat = x > 0
    x_or_one = np.maximum(x, 1.0)
    # the special functions of x alone are evaluated once per distinct frequency (about a hundred among 90,000
    # customers) and the logarithms once per distinct age and recency (whole days), then gathered back: the
    # same values in the same arrays, so the same sums
    by_x, by_age, by_recency = _distinct(x), _distinct(age), _distinct(t_x)

    def per_x(function: Callable[..., FloatArray], *args: float | FloatArray) -> FloatArray:
        return function(*args)[by_x[1]]

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        r, alpha, a, b = np.exp(theta)
        xs = by_x[0]
        r_x = r + x
        log_alpha_age = np.log(alpha + by_age[0])[by_age[1]]
        log_alpha_recency = np.log(alpha + by_recency[0])[by_recency[1]]
        # L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / G(r) * [(alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x)]
        alive = -r_x * log_alpha_age
        dropped = np.where(repeat, np.log(a) - per_x(np.log, b + np.maximum(xs, 1.0) - 1) - r_x * log_alpha_recency,
                           -np.inf)
        log_sum = np.logaddexp(alive, dropped)
        log_likelihood = (
            per_x(special.gammaln, r + xs)
            - special.gammaln(r)
            + r * np.log(alpha)
            + per_x(special.betaln, a, b + xs)
            - special.betaln(a, b)
            + log_sum
        )
        w_alive = np.exp(alive - log_sum)
        w_dropped = np.exp(dropped - log_sum)
        d_r = per_x(special.digamma, r + xs) - special.digamma(r) + np.log(alpha)
        d_r = d_r - w_alive * log_alpha_age - w_dropped * log_alpha_recency
        d_alpha = r / alpha - r_x * (w_alive / (alpha + age) + w_dropped / (alpha + t_x))
        digamma_ab = special.digamma(a + b)
        digamma_abx = per_x(special.digamma, a + b + xs)
        d_a = digamma_ab - digamma_abx + w_dropped / a
        d_b = per_x(special.digamma, b + xs) - special.digamma(b) + digamma_ab - digamma_abx
        d_b = d_b - w_dropped / (b + x_or_one - 1)
        gradient = np.array([r * d_r.mean(), alpha * d_alpha.mean(), a * d_a.mean(), b * d_b.mean()], dtype=np.float64)
        value = -float(log_likelihood.mean())
        if not np.isfinite(value):
            return np.inf, np.zeros(4)
        return value, -gradient

    return objective


def _nbd_objective(x: FloatArray, t_x: FloatArray, age: FloatArray) -> Objective:
    """The BG/NBD objective in the limit a/(a+b) -> 0 where nobody drops out: the NBD, in log(r), log(alpha)."""
    del t_x  # without drop-out, the time of the last purchase carries no information

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        r, alpha = np.exp(theta)
        r_x = r + x
        log_alpha_age = np.log(alpha + age)
        log_likelihood = special.gammaln(r_x) - special.gammaln(r) + r * np.log(alpha) - r_x * log_alpha_age
        d_r = special.digamma(r_x) - special.digamma(r) + np.log(alpha) - log_alpha_age
        d_alpha = r / alpha - r_x / (alpha + age)
        value = -float(log_likelihood.mean())
        if not np.isfinite(value):
            return np.inf, np.zeros(2)
        return value, -np.array([r * d_r.mean(), alpha * d_alpha.mean()], dtype=np.float64)

    return objective


def _dropout_slope(r: float, alpha: float, x: FloatArray, t_x: FloatArray, age: FloatArray) -> float:
    """Largest one-sided derivative of the mean log-likelihood at a/(a+b) = 0 towards some drop-out.

    With mu = a/(a+b) and kappa = a+b, the derivative in mu at mu = 0 is, per customer,
    -kappa (digamma(kappa+x) - digamma(kappa)) + [x>0] kappa/(kappa+x-1) ((alpha+T)/(alpha+t_x))^(r+x);
    its mean over customers, maximised over kappa on a grid from 1e-6 to 1e8 (the limits are flat beyond).
    """
    repeat = x > 0
    log_ratio = (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    with np.errstate(over="ignore"):
        ratio = np.exp(log_ratio)
    slopes = []
    for kappa in np.logspace(-6, 8, 141):
        spend_down = -kappa * (special.digamma(kappa + x) - special.digamma(kappa))
        drop = np.where(repeat, kappa / (kappa + np.maximum(x, 1.0) - 1) * ratio, 0.0)
        slopes.append(float(np.mean(spend_down + drop)))
    return max(slopes)


def fit_bgnbd(frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike) -> BgNbdFit:
    """Maximum-likelihood BG/NBD fit; parameters come back in the time unit of recency and age.

    When the likelihood keeps rising towards a mean drop-out probability a/(a+b) of 0 (a runs to 0 or b to
    infinity), the maximum is on that boundary, where the model is the NBD: the fit then returns a = 0 and
    b = inf (nobody drops out, P(alive) = 1), and is converged if the NBD part converged and the likelihood
    decreases from the boundary into the interior for every value of a+b.
    """
    x, t_x, age_ = _rfm(frequency, recency, age)
    mean_age = float(age_.mean())
    if mean_age == 0:
        raise ValueError("every customer has age 0: there is no observation time to fit on")
    scale = 1.0 / mean_age  # internal time unit: the mean age
    scaled_recency, scaled_age = t_x * scale, age_ * scale
    # deterministic start: one purchase per mean age on average, and a uniform Beta(1, 1) for the drop-out probability
    mean_frequency = max(float(x.mean()), 0.1)
    start = np.log(np.array([1.0, 1.0 / mean_frequency, 1.0, 1.0]))
    optimum = _maximise(_bgnbd_objective(x, scaled_recency, scaled_age), start, ("r", "alpha", "a", "b"))
    r, alpha, a, b = np.exp(optimum.theta)
    converged, iterations, message, objective = (
        optimum.converged,
        optimum.iterations,
        optimum.message,
        optimum.objective,
    )
    if not optimum.converged:
        boundary = _maximise(_nbd_objective(x, scaled_recency, scaled_age), optimum.theta[:2], ("r", "alpha"))
        slope = _dropout_slope(*np.exp(boundary.theta), x, scaled_recency, scaled_age)
        iterations += boundary.iterations
        logger.debug(
            "interior fit: %s; no-drop-out boundary: %s, slope into the interior %.2e", message, boundary.message, slope
        )
        if boundary.converged and slope <= _GRADIENT_TOLERANCE and boundary.objective <= optimum.objective + 1e-9:
            r, alpha = np.exp(boundary.theta)
            a, b = 0.0, np.inf
            converged, objective = True, boundary.objective
            message = (
                f"maximum on the boundary a/(a+b) = 0 (nobody drops out; the model is the NBD): {boundary.message}; "
                f"the likelihood decreases into the interior (largest slope {slope:.1e})"
            )
        else:
            message = f"{message}; the no-drop-out boundary is not the maximum either ({boundary.message})"
    # the likelihood is a density in purchase times: in the caller's unit it gains x * log(scale) per customer
    log_likelihood = -objective * x.size + float(x.sum()) * np.log(scale)
    fit = BgNbdFit(
        r=float(r),
        alpha=float(alpha / scale),
        a=float(a),
        b=float(b),
        log_likelihood=float(log_likelihood),
        converged=converged,
        iterations=iterations,
        message=message,
        n_customers=int(x.size),
    )
    logger.debug("BG/NBD fit: %s", fit)
    return fit


def probability_alive(
    fit: BgNbdFit, frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike
) -> FloatArray:
    """Probability that each customer has not dropped out by the end of the window (1 for frequency 0)."""
    x, t_x, age_ = _rfm(frequency, recency, age)
    return _probability_alive(fit, x, t_x, age_)


def _probability_alive(fit: BgNbdFit, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    if fit.a == 0:  # the no-drop-out boundary
        return np.ones_like(x)
    # P(alive) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), as a logistic of the log-odds of dropped out
    log_odds_dropped = (
        np.log(fit.a)
        - np.log(fit.b + np.maximum(x, 1.0) - 1)
        + (fit.r + x) * (np.log(fit.alpha + age) - np.log(fit.alpha + t_x))
    )
    return np.where(x > 0, special.expit(-log_odds_dropped), 1.0)


def expected_purchases(
    fit: BgNbdFit, frequency: npt.ArrayLike, recency: npt.ArrayLike, age: npt.ArrayLike, horizon: float
) -> FloatArray:
    """Expected number of repeat purchases of each customer in the next `horizon` time units (eq. 10 of the paper).

    Eq. 10 is P(alive) * (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))].
    Evaluated through scipy.special.hyp2f1 it loses every digit near a = 1 (a 0/0 the formula hides) and returns
    nan or inf for large x, b or t/(alpha+T). The same quantity is P(alive) * E[(1 - (1 + p tau)^-(r+x)) / p] with
    tau = t / (alpha + T) and the drop-out probability p ~ Beta(a, b + x) (its distribution for a customer still
    alive), an integral of a bounded, smooth function: it is computed by quadrature instead, for any parameters.
    """
    x, t_x, age_ = _rfm(frequency, recency, age)
    t = _horizon(horizon)
    alive = _probability_alive(fit, x, t_x, age_)
    tau = t / (fit.alpha + age_)
    if fit.a == 0:  # the no-drop-out boundary: the NBD's (r + x) / (alpha + T) purchases per time unit
        return (fit.r + x) * tau
    expected = np.empty_like(x)
    for value in np.unique(x):
        rows = x == value
        expected[rows] = _expected_while_alive(fit.r, fit.a, fit.b, float(value), tau[rows])
    return alive * expected


def _expected_while_alive(r: float, a: float, b: float, x: float, tau: FloatArray) -> FloatArray:
    """E[g(p)], g(p) = (1 - (1 + p tau)^-k) / p, k = r + x, p ~ Beta(a, b + x), for each tau.

    In y = logit(p) the Beta density is log-concave, and g(logit^-1(y)) is analytic in a strip of half-width pi
    around the real line, so composite Gauss-Legendre panels converge fast. The integral runs between the points
    where the density has dropped by e^-50 from its mode, clipped to [p_low, 1 - 1e-10] where p_low is small
    enough that g(p) = k tau to 10 digits below it; the mass beyond the clips comes from the incomplete beta
    function, times g(0) = k tau on the left and g(1) on the right.
    """
    k = r + x
    beta = b + x
    tau_max = float(tau.max())
    if tau_max == 0:
        return np.zeros_like(tau)
    log_normaliser = float(special.betaln(a, beta))

    def log_density(y: float | FloatArray) -> FloatArray:
        return np.asarray(a * special.log_expit(y) + beta * special.log_expit(-y) - log_normaliser)

    mode = float(np.log(a / beta))
    spread = float(np.sqrt((a + beta) / (a * beta)))  # 1 / sqrt(-second derivative of the log-density at the mode)
    level = float(log_density(mode)) - _LEVEL_DROP
    left_clip = float(np.log(_TAIL_PROBABILITY / max((k + 1) * tau_max, 1.0)))
    right_clip = float(-np.log(_TAIL_PROBABILITY))
    low = max(left_clip, _level_crossing(log_density, mode, level, -spread, left_clip))
    high = min(right_clip, _level_crossing(log_density, mode, level, spread, right_clip))

    total = k * tau * special.betainc(a, beta, special.expit(low))
    total = total - np.expm1(-k * np.log1p(tau)) * special.betaincc(a, beta, special.expit(high))
    if high > low:
        panels = int(min(_MAX_PANELS, np.ceil((high - low) / min(1.0, spread / 2))))
        edges = np.linspace(low, high, panels + 1)
        half = (edges[1:] - edges[:-1]) / 2
        nodes = ((edges[:-1] + edges[1:]) / 2)[:, None] + half[:, None] * _GAUSS_NODES[None, :]
        weights = (half[:, None] * _GAUSS_WEIGHTS[None, :]).ravel() * np.exp(log_density(nodes.ravel()))
        p = special.expit(nodes.ravel())
        # customers share their tau (whole days of age): g is integrated once per distinct tau (a few hundred
        # rather than tens of thousands) and the integrals gathered back. Each row is summed on its own (numpy's
        # pairwise sum along the row), so a customer's figure does not depend on its position among the others:
        # BLAS's matrix-vector product sums a row in an order that depends on the row's position in the matrix
        distinct, back = _distinct(tau)
        g = -np.expm1(-k * np.log1p(p[None, :] * distinct[:, None])) / p[None, :]
        total = total + np.sum(g * weights[None, :], axis=1)[back]
    return np.asarray(total, dtype=np.float64)


def _distinct(values: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """The distinct values and, for each value, its position among them."""
    distinct, back = np.unique(values, return_inverse=True)
    return distinct, back.ravel()


def _level_crossing(
    function: Callable[[float], FloatArray], start: float, level: float, step: float, limit: float
) -> float:
    """Where a concave function, at its maximum at `start`, falls to `level`, searching in the direction of `step`
    with doubling steps; `limit` if it is still above `level` there."""
    inside = start
    while True:
        outside = inside + step
        if (step < 0 and outside <= limit) or (step > 0 and outside >= limit):
            if float(function(limit)) >= level:
                return limit
            outside = limit
            break
        if float(function(outside)) < level:
            break
        inside, step = outside, step * 2
    return float(optimize.brentq(lambda y: float(function(y)) - level, min(inside, outside), max(inside, outside)))


# ---------------------------------------------------------------------------------------------------------------------
# Gamma-Gamma


def _spend_inputs(frequency: npt.ArrayLike, monetary: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = _frequency(frequency)
    value = _vector("monetary", monetary)
    _same_length(frequency=x, monetary=value)
    return x, value


def _gamma_gamma_objective(x: FloatArray, mean_value: FloatArray) -> Objective:
    """Mean negative log-likelihood of the mean of x transaction values, and its gradient in log-parameters."""
    log_x = np.log(x)
    log_value = np.log(mean_value)
    xs, back = _distinct(x)  # the special functions of x alone, once per distinct frequency (as in the BG/NBD)

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        p, q, v = np.exp(theta)
        px = p * x
        log_total = np.log(v + x * mean_value)
        # f(z | x) = G(px+q) / (G(px) G(q)) * v^q z^(px-1) x^px / (v + x z)^(px+q)
        log_likelihood = (
            special.gammaln(p * xs + q)[back]
            - special.gammaln(p * xs)[back]
            - special.gammaln(q)
            + q * np.log(v)
            + (px - 1) * log_value
            + px * log_x
            - (px + q) * log_total
        )
        digamma_total = special.digamma(p * xs + q)[back]
        d_p = x * (digamma_total - special.digamma(p * xs)[back] + log_value + log_x - log_total)
        d_q = digamma_total - special.digamma(q) + np.log(v) - log_total
        d_v = q / v - (px + q) / (v + x * mean_value)
        gradient = np.array([p * d_p.mean(), q * d_q.mean(), v * d_v.mean()], dtype=np.float64)
        value = -float(log_likelihood.mean())
        if not np.isfinite(value):
            return np.inf, np.zeros(3)
        return value, -gradient

    return objective


def fit_gamma_gamma(frequency: npt.ArrayLike, monetary: npt.ArrayLike) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma fit on the customers with frequency > 0.

    monetary is each customer's mean value over the repeat purchases (the first purchase excluded); customers with
    frequency 0 are ignored. The model assumes spend per purchase independent of the number of purchases.
    """
    x, value = _spend_inputs(frequency, monetary)
    repeat = x > 0
    if not np.any(repeat):
        raise ValueError("no customer has frequency > 0: the Gamma-Gamma model is fitted on repeat customers only")
    x, value = x[repeat], value[repeat]
    if np.any(value <= 0):
        raise ValueError(f"monetary must be positive where frequency > 0 ({int(np.sum(value <= 0))} customer(s))")
    scale = 1.0 / float(value.mean())  # internal money unit: the mean of the customers' mean values
    objective = _gamma_gamma_objective(x, value * scale)
    # deterministic start: the method of moments for one transaction per customer, clipped to a finite mean
    scaled = value * scale
    shape = float(np.clip(scaled.mean() ** 2 / max(scaled.var(), 1e-12), 0.1, 100.0))
    start = np.log(np.array([shape, 2.0, 1.0 / shape]))
    optimum = _maximise(objective, start, ("p", "q", "v"))
    p, q, v = np.exp(optimum.theta)
    # a density in money: in the caller's unit it gains log(scale) per customer
    log_likelihood = -optimum.objective * x.size + x.size * np.log(scale)
    fit = GammaGammaFit(
        p=float(p),
        q=float(q),
        v=float(v / scale),
        log_likelihood=float(log_likelihood),
        converged=optimum.converged,
        iterations=optimum.iterations,
        message=optimum.message,
        n_customers=int(x.size),
    )
    logger.debug("Gamma-Gamma fit: %s", fit)
    return fit


def expected_spend(fit: GammaGammaFit, frequency: npt.ArrayLike, monetary: npt.ArrayLike) -> FloatArray:
    """Expected value of each customer's future transactions given their repeat purchases' mean value.

    E = p (v + x m) / (p x + q - 1), a weighted mean of the population mean p v / (q - 1) and the customer's own
    mean m; customers with frequency 0 get the population mean (monetary ignored). Where the mean does not exist
    (p x + q <= 1) the result is inf.
    """
    x, value = _spend_inputs(frequency, monetary)
    value = np.where(x > 0, value, 0.0)
    denominator = fit.p * x + fit.q - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        spend = fit.p * (fit.v + x * value) / denominator
    return np.where(denominator > 0, spend, np.inf)
