"""Performance metrics of a return series, with the definitions users know from empyrical.

Every function takes simple per-period returns (a Series, list or 1-D array; NaN entries
are dropped first) and returns a ``float``. Edge cases never raise: too few observations,
zero dispersion or an undefined ratio give ``NaN``, as stated per function.

``periods_per_year`` defaults to 252 (daily bars). Definitions follow empyrical 0.5
(the library behind pyfolio), except where a note says otherwise:

==========================  ===============================================================
function                    definition
==========================  ===============================================================
total_return                prod(1 + r) - 1                                 (cum_returns_final)
annual_return               (1 + total_return) ** (ppy / n) - 1, the CAGR     (annual_return)
annual_volatility           std(r, ddof=1) * sqrt(ppy)                    (annual_volatility)
sharpe                      mean(r - rf) / std(r - rf, ddof=1) * sqrt(ppy)     (sharpe_ratio)
sortino                     mean(r - req) * sqrt(ppy) / sqrt(mean(min(r - req, 0) ** 2))
                                                                              (sortino_ratio)
max_drawdown                min(wealth / running peak - 1), the peak including the starting
                            wealth of 1; <= 0                                  (max_drawdown)
calmar                      annual_return / abs(max_drawdown)                  (calmar_ratio)
tail_ratio                  abs(95th percentile) / abs(5th percentile)           (tail_ratio)
win_rate                    share of periods with r > 0 among periods with r != 0
profit_factor               sum of positive r / abs(sum of negative r)
average_turnover            mean of the per-period turnover (sum of abs weight changes)
n_trades                    number of (date, asset) weight changes
probabilistic_sharpe_ratio  Bailey & López de Prado (2012), see the function
==========================  ===============================================================

Where empyrical returns ``inf`` (a ratio over zero dispersion or zero drawdown) these return
``NaN``, so that every metric is a finite number or NaN and can be stored as JSON and used
as an Optuna objective.

The moments of a return series — count, sum, mean, standard deviation (``ddof=1``),
skewness and non-excess kurtosis (population moments) — are computed in one place,
:func:`return_moments`; the per-metric functions, :func:`summarize` and the overfitting
statistics of :mod:`foldwise.stats` all take them from there, as they take the variance of
the Sharpe ratio estimator from :func:`sharpe_estimator_variance`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from foldwise.errors import UnknownMetricError

__all__ = [
    "DEFAULT_PERIODS_PER_YEAR",
    "METRICS",
    "Moments",
    "annual_return",
    "annual_volatility",
    "average_turnover",
    "calmar",
    "max_drawdown",
    "n_trades",
    "probabilistic_sharpe_ratio",
    "profit_factor",
    "psr_from_moments",
    "return_moments",
    "sharpe",
    "sharpe_estimator_variance",
    "sortino",
    "summarize",
    "tail_ratio",
    "total_return",
    "win_rate",
]

DEFAULT_PERIODS_PER_YEAR = 252

#: A standard deviation below this is treated as zero (float noise of a constant series).
_ZERO_DISPERSION = 1e-14

#: The metrics :func:`summarize` returns, each with the direction in which it is better.
METRICS: dict[str, str] = {
    "sharpe": "maximize",
    "sortino": "maximize",
    "annual_return": "maximize",
    "annual_volatility": "minimize",
    "max_drawdown": "maximize",  # a drawdown is <= 0: closer to 0 is better
    "calmar": "maximize",
    "total_return": "maximize",
    "win_rate": "maximize",
    "profit_factor": "maximize",
    "tail_ratio": "maximize",
    "average_turnover": "minimize",
    "n_trades": "minimize",
    "probabilistic_sharpe_ratio": "maximize",
}


#: ``ndarray.sum()`` of a 1-D array without the Python wrapper (the same pairwise sum).
_sum = np.add.reduce


def _clean(returns: Any) -> np.ndarray:
    array = np.asarray(returns, dtype=np.float64).reshape(-1)
    # A NaN anywhere makes the sum NaN: one reduction instead of a mask over the series in
    # the usual case without NaN (a sum that is NaN from inf - inf drops nothing below).
    if math.isnan(_sum(array)):
        array = array[~np.isnan(array)]
    return array


class Moments(NamedTuple):
    """The moments of a return series (see :func:`return_moments`)."""

    n: int
    #: Sum of the returns.
    total: float
    mean: float
    #: Sample standard deviation (``ddof=1``); NaN below 2 observations.
    std: float
    #: Population skewness ``m3 / m2 ** 1.5``; NaN below 3 observations or without dispersion.
    skew: float
    #: Population non-excess kurtosis ``m4 / m2 ** 2`` (3 for a normal distribution); NaN
    #: below 3 observations or without dispersion.
    kurtosis: float

    @property
    def sharpe(self) -> float:
        """Per-period Sharpe ratio ``mean / std``; NaN without dispersion."""
        return self.mean / self.std if self.std > _ZERO_DISPERSION else math.nan


_NO_MOMENTS = Moments(0, 0.0, math.nan, math.nan, math.nan, math.nan)


def return_moments(returns: Any) -> Moments:
    """Count, sum, mean, standard deviation, skewness and kurtosis of a return series.

    NaN entries are dropped. The standard deviation is the sample one (``ddof=1``, as
    ``numpy.std(r, ddof=1)``); skewness and kurtosis are from population moments, as
    ``scipy.stats.skew(r)`` and ``scipy.stats.kurtosis(r, fisher=False)`` (non-excess: 3
    for a normal distribution). A standard deviation of at most 1e-14 counts as no
    dispersion (float noise of a constant series): skewness and kurtosis are then NaN.

    >>> m = return_moments([0.01, -0.02, 0.03, float("nan")])
    >>> m.n, round(m.mean, 4), round(m.skew, 4), round(m.kurtosis, 4)
    (3, 0.0067, -0.2391, 1.5)
    """
    return _moments(_clean(returns))


def _moments(r: np.ndarray) -> Moments:
    """:func:`return_moments` of a 1-D float array without NaN (the kernel itself)."""
    n = r.size
    if n == 0:
        return _NO_MOMENTS
    total = float(_sum(r))
    mean = total / n
    if n < 2:
        return Moments(n, total, mean, math.nan, math.nan, math.nan)
    centred = np.subtract(r, mean)
    squared = np.multiply(centred, centred)
    sum_squares = float(_sum(squared))
    std = math.sqrt(sum_squares / (n - 1))
    if n < 3 or not std > _ZERO_DISPERSION:
        return Moments(n, total, mean, std, math.nan, math.nan)
    m2 = sum_squares / n
    cubed = np.multiply(squared, centred, out=centred)
    skew = float(_sum(cubed)) / n / m2**1.5
    fourth = np.multiply(squared, squared, out=squared)
    return Moments(n, total, mean, std, skew, float(_sum(fourth)) / n / m2**2)


def sharpe_estimator_variance(sharpe: float, skew: float, kurtosis: float) -> float:
    """``1 - skew * SR + (kurtosis - 1) / 4 * SR**2``: the variance term of the estimated
    per-period Sharpe ratio under non-normal returns (Mertens 2002; Bailey & López de
    Prado 2012), non-excess kurtosis."""
    return 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2


def psr_from_moments(sharpe: float, benchmark: float, skew: float, kurtosis: float,
                     n: int) -> float:
    """The probabilistic Sharpe ratio of per-period ``sharpe`` over ``n`` observations
    against ``benchmark`` (see :func:`probabilistic_sharpe_ratio`); NaN when ``n < 2`` or
    the variance term is not positive."""
    variance = sharpe_estimator_variance(sharpe, skew, kurtosis)
    if n < 2 or not variance > 0.0:
        return math.nan
    return _norm_cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(variance))


def total_return(returns: Any) -> float:
    """Compounded return over the whole series: ``prod(1 + r) - 1``; NaN if empty."""
    r = _clean(returns)
    return float(np.prod(1.0 + r) - 1.0) if r.size else math.nan


def _cagr(growth: float, n: int, periods_per_year: float) -> float:
    if n == 0:
        return math.nan
    if growth <= 0.0:
        return -1.0  # the wealth was wiped out; empyrical gives NaN here
    return float(growth ** (periods_per_year / n) - 1.0)


def annual_return(returns: Any, periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> float:
    """Compound annual growth rate: ``(prod(1 + r)) ** (ppy / n) - 1``.

    NaN if empty; -1.0 if the wealth reaches zero or below.
    """
    r = _clean(returns)
    return _cagr(float(np.prod(1.0 + r)) if r.size else math.nan, r.size, periods_per_year)


def annual_volatility(returns: Any, periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> float:
    """``std(r, ddof=1) * sqrt(ppy)``; NaN with fewer than 2 observations."""
    return _moments(_clean(returns)).std * math.sqrt(periods_per_year)


def _sharpe(mean: float, std: float, periods_per_year: float) -> float:
    if not std > _ZERO_DISPERSION:
        return math.nan
    return mean / std * math.sqrt(periods_per_year)


def sharpe(returns: Any, risk_free: float = 0.0,
           periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> float:
    """Annualized Sharpe ratio ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ppy)``.

    ``risk_free`` is per period. NaN with fewer than 2 observations or zero dispersion.
    """
    m = _moments(_clean(returns) - risk_free)
    return _sharpe(m.mean, m.std, periods_per_year) if m.n >= 2 else math.nan


def _sortino(excess: np.ndarray, periods_per_year: float) -> float:
    if excess.size < 2:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if not downside > _ZERO_DISPERSION:
        return math.nan
    return float(excess.mean()) * math.sqrt(periods_per_year) / downside


def sortino(returns: Any, required_return: float = 0.0,
            periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> float:
    """Annualized Sortino ratio (empyrical): mean excess return over downside deviation.

    ``downside = sqrt(mean(min(r - required, 0) ** 2))`` over all periods. NaN with fewer
    than 2 observations or no period below ``required_return``.
    """
    return _sortino(_clean(returns) - required_return, periods_per_year)


def _max_drawdown(r: np.ndarray) -> float:
    if r.size == 0:
        return math.nan
    wealth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.maximum(wealth, 1.0))
    return float(min(0.0, np.min(wealth / peak - 1.0)))


def max_drawdown(returns: Any) -> float:
    """Largest fall of the compounded wealth from a running peak, as a fraction (<= 0).

    The starting wealth of 1 counts as a peak, so a loss on the first period is a drawdown.
    NaN if empty.
    """
    return _max_drawdown(_clean(returns))


def calmar(returns: Any, periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> float:
    """``annual_return / abs(max_drawdown)``; NaN when there is no drawdown."""
    r = _clean(returns)
    drawdown = _max_drawdown(r)
    if not drawdown < 0.0:
        return math.nan
    return annual_return(r, periods_per_year) / -drawdown


def _win_rate(r: np.ndarray) -> float:
    active = np.count_nonzero(r)
    return float(np.count_nonzero(r > 0) / active) if active else math.nan


def win_rate(returns: Any) -> float:
    """Share of periods with a positive return among periods with a non-zero return.

    Periods with no position (return exactly 0) do not count. NaN if none is non-zero.
    """
    return _win_rate(_clean(returns))


def _profit_factor(r: np.ndarray) -> float:
    gains = float(np.maximum(r, 0.0).sum())
    losses = -float(np.minimum(r, 0.0).sum())
    return gains / losses if losses > 0 else math.nan


def profit_factor(returns: Any) -> float:
    """Sum of positive returns over the absolute sum of negative returns.

    NaN when there is no negative return (empyrical-style tools would give inf).
    """
    return _profit_factor(_clean(returns))


def _percentile(ordered: np.ndarray, q: float) -> float:
    """``np.percentile(x, q)`` (linear interpolation) of an already sorted array.

    ``np.percentile`` costs ~60 us of overhead on a short array; a sorted array and two
    lookups cost a few microseconds, and the optimizer computes this once per trial.
    """
    position = q / 100.0 * (ordered.size - 1)
    below = int(position)
    above = min(below + 1, ordered.size - 1)
    fraction = position - below
    return float(ordered[below] + (ordered[above] - ordered[below]) * fraction)


def _tail_ratio(r: np.ndarray) -> float:
    if r.size == 0:
        return math.nan
    ordered = np.sort(r)
    low = _percentile(ordered, 5.0)
    return abs(_percentile(ordered, 95.0)) / abs(low) if low != 0 else math.nan


def tail_ratio(returns: Any) -> float:
    """``abs(95th percentile) / abs(5th percentile)`` of the returns (empyrical).

    Percentiles interpolate linearly, as ``np.percentile`` does. NaN if empty or when the
    5th percentile is 0.
    """
    return _tail_ratio(_clean(returns))


def average_turnover(turnover: Any) -> float:
    """Mean per-period turnover (sum over assets of the absolute weight change); NaN if empty."""
    t = np.asarray(turnover, dtype=np.float64).reshape(-1)
    total = _sum(t)
    if math.isnan(total):  # NaN entries are dropped
        t = t[~np.isnan(t)]
        total = _sum(t)
    return float(total) / t.size if t.size else math.nan  # numpy's mean: the sum over n


def n_trades(weight_changes: Any) -> float:
    """Number of non-zero entries in an array of weight changes (one per date and asset)."""
    return float(np.count_nonzero(np.nan_to_num(np.asarray(weight_changes, dtype=float))))


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _psr(m: Moments, benchmark_sharpe: float) -> float:
    if m.n < 3 or not m.std > _ZERO_DISPERSION:
        return math.nan
    return psr_from_moments(m.sharpe, benchmark_sharpe, m.skew, m.kurtosis, m.n)


def probabilistic_sharpe_ratio(returns: Any, benchmark_sharpe: float = 0.0) -> float:
    """Probability that the true Sharpe ratio exceeds ``benchmark_sharpe``.

    Bailey, D. H. and López de Prado, M. (2012), "The Sharpe Ratio Efficient Frontier",
    Journal of Risk 15(2), eq. for PSR::

        PSR = Phi( (SR - SR*) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR**2) )

    with ``SR = mean / std(ddof=1)`` the **per-period** (not annualized) Sharpe ratio,
    ``g3`` the sample skewness and ``g4`` the sample **non-excess** kurtosis (3 for a normal
    distribution), both from population moments, and ``n`` the number of observations.
    ``benchmark_sharpe`` is per period too. NaN with fewer than 3 observations, zero
    dispersion, or a non-positive variance term.
    """
    return _psr(_moments(_clean(returns)), benchmark_sharpe)


def _check_names(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple without repeats, each one a key of :data:`METRICS`."""
    if isinstance(names, str):
        names = (names,)
    chosen = tuple(dict.fromkeys(names))
    for name in chosen:
        if name not in METRICS:
            close = difflib.get_close_matches(str(name), list(METRICS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownMetricError(
                f"unknown metric {name!r}.{hint} The metrics are: {', '.join(METRICS)}.")
    return chosen


class _Pass:
    """One return series (3 or more observations, no NaN) and the intermediates its metrics
    share, each computed on first use.

    Every metric of :data:`METRICS` is a method of the same name, so asking for one metric
    computes only what it needs, and asking for several computes each shared intermediate
    once. A metric's value does not depend on which others were asked for with it: each
    intermediate is computed by the same numpy operations whichever metric asks first.
    """

    __slots__ = ("_cagr_value", "_drawdown_value", "_losses_value", "_moments_value", "_ppy",
                 "_trades", "_turnover", "_wealth_value", "n", "r")

    def __init__(self, r: np.ndarray, periods_per_year: float, turnover: Any,
                 trades: float) -> None:
        self.r = r
        self.n = r.size
        self._ppy = periods_per_year
        self._turnover = turnover
        self._trades = trades
        self._moments_value: Moments | None = None
        self._wealth_value: np.ndarray | None = None
        self._losses_value: tuple[float, float] | None = None
        self._drawdown_value: float | None = None
        self._cagr_value: float | None = None

    # --- shared intermediates ----------------------------------------------------------

    def _moments(self) -> Moments:
        if self._moments_value is None:
            self._moments_value = _moments(self.r)
        return self._moments_value

    def _total(self) -> float:
        """``float(r.sum())``: the moments' own sum when they are at hand."""
        if self._moments_value is not None:
            return self._moments_value.total
        return float(_sum(self.r))

    def _wealth(self) -> np.ndarray:
        """Compounded wealth ``cumprod(1 + r)``."""
        if self._wealth_value is None:
            wealth = np.add(self.r, 1.0)
            self._wealth_value = np.multiply.accumulate(wealth, out=wealth)
        return self._wealth_value

    def _losses(self) -> tuple[float, float]:
        """The absolute sum of the negative returns and the downside deviation
        ``sqrt(mean(min(r, 0) ** 2))``."""
        if self._losses_value is None:
            losses_only = np.minimum(self.r, 0.0)
            losses = -float(_sum(losses_only))
            squares = np.multiply(losses_only, losses_only, out=losses_only)
            self._losses_value = (losses, math.sqrt(float(_sum(squares)) / self.n))
        return self._losses_value

    def _drawdown(self) -> float:
        if self._drawdown_value is None:
            wealth = self._wealth()
            peak = np.maximum(wealth, 1.0)
            np.maximum.accumulate(peak, out=peak)
            np.divide(wealth, peak, out=peak)
            self._drawdown_value = min(0.0, float(np.minimum.reduce(peak)) - 1.0)
        return self._drawdown_value

    def _cagr(self) -> float:
        if self._cagr_value is None:
            self._cagr_value = _cagr(float(self._wealth()[-1]), self.n, self._ppy)
        return self._cagr_value

    # --- the metrics, named as in METRICS ---------------------------------------------

    def sharpe(self) -> float:
        m = self._moments()
        return _sharpe(m.mean, m.std, self._ppy)

    def sortino(self) -> float:
        downside = self._losses()[1]
        if not downside > _ZERO_DISPERSION:
            return math.nan
        return self._moments().mean * math.sqrt(self._ppy) / downside

    def annual_return(self) -> float:
        return self._cagr()

    def annual_volatility(self) -> float:
        return self._moments().std * math.sqrt(self._ppy)

    def max_drawdown(self) -> float:
        return self._drawdown()

    def calmar(self) -> float:
        drawdown = self._drawdown()
        return self._cagr() / -drawdown if drawdown < 0.0 else math.nan

    def total_return(self) -> float:
        return float(self._wealth()[-1]) - 1.0

    def win_rate(self) -> float:
        active = np.count_nonzero(self.r)
        return np.count_nonzero(self.r > 0) / active if active else math.nan

    def profit_factor(self) -> float:
        losses = self._losses()[0]
        return (self._total() + losses) / losses if losses > 0 else math.nan

    def tail_ratio(self) -> float:
        ordered = np.sort(self.r)
        low = _percentile(ordered, 5.0)
        return abs(_percentile(ordered, 95.0)) / abs(low) if low != 0 else math.nan

    def average_turnover(self) -> float:
        return _average_turnover(self._turnover)

    def n_trades(self) -> float:
        return self._trades

    def probabilistic_sharpe_ratio(self) -> float:
        return _psr(self._moments(), 0.0)


def _average_turnover(turnover: Any) -> float:
    if turnover is None:
        return math.nan
    return average_turnover(turnover)


def summarize(returns: Any, *, turnover: Any = None, weight_changes: Any = None,
              trades: int | None = None,
              periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
              names: Iterable[str] | None = None) -> dict[str, float]:
    """Every metric of :data:`METRICS` (or those in ``names``) in one pass, as floats.

    Parameters
    ----------
    returns
        Per-period simple returns.
    turnover
        Per-period turnover; ``average_turnover`` is NaN without it.
    weight_changes, trades
        Either the array of weight changes (``n_trades`` counts its non-zero entries) or the
        count itself; ``n_trades`` is NaN without both.
    periods_per_year
        Annualization factor (252 for daily bars).
    names
        The metrics to compute (names of :data:`METRICS`); None for all of them. Only what
        those metrics need is computed, and each value equals the same entry of the full
        summary exactly.

    Returns
    -------
    dict
        ``{name: float}`` for every name in :data:`METRICS` in that order, or for every name
        of ``names`` in the order given.

    Raises
    ------
    UnknownMetricError
        A name in ``names`` that is not a metric (the message suggests the closest).

    Examples
    --------
    >>> summary = summarize([0.01, -0.02, 0.015, 0.005])
    >>> round(summary["sharpe"], 4), round(summary["max_drawdown"], 4)
    (2.5529, -0.02)
    >>> summarize([0.01, -0.02, 0.015, 0.005], names=["sharpe"]) == {"sharpe": summary["sharpe"]}
    True
    """
    chosen = tuple(METRICS) if names is None else _check_names(names)
    r = _clean(returns)
    if "n_trades" not in chosen:
        count = math.nan  # not asked for: the changes are not counted
    elif trades is not None:
        count = float(trades)
    elif weight_changes is not None:
        count = n_trades(weight_changes)
    else:
        count = math.nan
    if r.size < 3:  # too short for moments: the plain definitions handle every edge case
        turnover_mean = (_average_turnover(turnover) if "average_turnover" in chosen
                         else math.nan)
        short = _summarize_short(r, count, turnover_mean, periods_per_year)
        return {name: short[name] for name in chosen}
    # One set of shared sums, each computed once and only if a chosen metric needs it
    # (this runs once per trial and window).
    one_pass = _Pass(r, periods_per_year, turnover, count)
    return {name: float(_KERNELS[name](one_pass)) for name in chosen}


#: The method of :class:`_Pass` computing each metric of :data:`METRICS`.
_KERNELS: dict[str, Callable[[_Pass], float]] = {name: getattr(_Pass, name) for name in METRICS}


def _summarize_short(r: np.ndarray, count: float, turnover_mean: float,
                     periods_per_year: float) -> dict[str, float]:
    n = r.size
    growth = float(np.prod(1.0 + r)) if n else math.nan
    moments = _moments(r)
    std = moments.std
    cagr = _cagr(growth, n, periods_per_year)
    drawdown = _max_drawdown(r)
    return {
        "sharpe": _sharpe(moments.mean, std, periods_per_year) if n >= 2 else math.nan,
        "sortino": _sortino(r, periods_per_year),
        "annual_return": cagr,
        "annual_volatility": std * math.sqrt(periods_per_year) if n >= 2 else math.nan,
        "max_drawdown": drawdown,
        "calmar": cagr / -drawdown if drawdown < 0.0 else math.nan,
        "total_return": growth - 1.0,
        "win_rate": _win_rate(r),
        "profit_factor": _profit_factor(r),
        "tail_ratio": _tail_ratio(r),
        "average_turnover": turnover_mean,
        "n_trades": count,
        "probabilistic_sharpe_ratio": math.nan,
    }
