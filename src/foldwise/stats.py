"""Overfitting statistics: how much of a backtested Sharpe ratio is luck and selection.

==================================  ==========================================================
function                            source
==================================  ==========================================================
probabilistic_sharpe_ratio          Bailey & López de Prado (2012), "The Sharpe Ratio Efficient
                                    Frontier", Journal of Risk 15(2) (from foldwise.metrics)
expected_max_sharpe                 Bailey & López de Prado (2014), "The Deflated Sharpe Ratio:
                                    Correcting for Selection Bias, Backtest Overfitting and
                                    Non-Normality", Journal of Portfolio Management 40(5), eq. 2
deflated_sharpe_ratio               the same paper: PSR against the expected maximum Sharpe
                                    ratio of N independent trials
min_track_record_length             Bailey & López de Prado (2012), MinTRL
probability_of_backtest_overfitting Bailey, Borwein, López de Prado & Zhu (2017), "The
                                    Probability of Backtest Overfitting", Journal of
                                    Computational Finance 20(4): combinatorially symmetric
                                    cross-validation (CSCV)
==================================  ==========================================================

Conventions, as in the papers: Sharpe ratios are **per period** (not annualized) —
divide an annualized ratio by ``sqrt(periods_per_year)`` — and kurtosis is **non-excess**
(3 for a normal distribution). ``n`` counts return observations. The moments and the
variance term of the Sharpe ratio estimator come from :mod:`foldwise.metrics`
(:func:`~foldwise.metrics.return_moments`, :func:`~foldwise.metrics.psr_from_moments`), so
a PSR here and the ``probabilistic_sharpe_ratio`` metric of a backtest are one formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import special as _special  # not scipy.stats: a second of import time

from foldwise._cscv import cscv_sharpe_selection, kept_rows
from foldwise.errors import FoldwiseError
from foldwise.metrics import (  # re-exported: stats holds them all
    probabilistic_sharpe_ratio,
    psr_from_moments,
    return_moments,
    sharpe_estimator_variance,
)

__all__ = [
    "EULER_GAMMA",
    "PBOResult",
    "StatsError",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "min_track_record_length",
    "moments",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "sharpe_of_columns",
]

#: The Euler-Mascheroni constant.
EULER_GAMMA = 0.5772156649015329

#: Combinations CSCV may enumerate before refusing (C(16, 8) = 12870 is the paper's largest).
MAX_CSCV_COMBINATIONS = 20_000


class StatsError(FoldwiseError, ValueError):
    """Inputs a statistic cannot be computed from."""


def moments(returns: Any) -> tuple[float, float, float, int]:
    """``(per-period Sharpe ratio, skewness, non-excess kurtosis, n)`` of a return series.

    The Sharpe ratio uses ``std(ddof=1)``; skewness and kurtosis use population moments
    (:func:`foldwise.metrics.return_moments`). NaN entries are dropped. All three are NaN
    with fewer than 3 observations or no dispersion (a standard deviation of at most
    1e-14).
    """
    m = return_moments(returns)
    if m.n < 3 or math.isnan(m.skew):
        return math.nan, math.nan, math.nan, m.n
    return m.sharpe, m.skew, m.kurtosis, m.n


def expected_max_sharpe(n_trials: float, sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios whose true value is 0.

    ``E[max SR] ~= sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))`` with ``g`` the
    Euler-Mascheroni constant and ``Z`` the standard normal quantile (Bailey & López de
    Prado 2014, eq. 2). ``sharpe_variance`` is the variance of the trials' Sharpe ratios,
    in the same units as the result (per period, or annualized for an annualized result).
    One trial has nothing to be selected from: the result is 0.
    """
    if n_trials < 1:
        raise StatsError(f"n_trials must be >= 1, got {n_trials}.")
    if sharpe_variance < 0:
        raise StatsError(f"sharpe_variance must be >= 0, got {sharpe_variance}.")
    if n_trials == 1:
        return 0.0
    z1 = _special.ndtri(1.0 - 1.0 / n_trials)  # the standard normal quantile
    z2 = _special.ndtri(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(returns: Any = None, *, n_trials: float, sharpe_variance: float,
                          sharpe: float | None = None, skew: float | None = None,
                          kurtosis: float | None = None, n: int | None = None) -> float:
    """Deflated Sharpe ratio: the probability that the selected strategy's true Sharpe
    ratio exceeds what the best of ``n_trials`` skill-less trials would show.

    ``DSR = PSR(SR0)`` with ``SR0 = expected_max_sharpe(n_trials, sharpe_variance)``
    (Bailey & López de Prado 2014).

    Parameters
    ----------
    returns
        Per-period returns of the selected strategy; or pass ``sharpe``, ``skew``,
        ``kurtosis`` and ``n`` directly.
    n_trials
        Number of independent trials behind the selection — the distinct parameter sets
        actually evaluated, not the number of Optuna trials (duplicates are not trials).
    sharpe_variance
        Variance of the per-period Sharpe ratios of those trials.
    sharpe, skew, kurtosis, n
        Per-period Sharpe ratio, skewness, non-excess kurtosis and observation count.

    Examples
    --------
    The paper's example: an annualized SR of 2.5 over 5 years of daily returns (250 a
    year), skewness -3, kurtosis 10, selected from 100 trials whose annualized Sharpe
    ratios have variance 0.5:

    >>> round(deflated_sharpe_ratio(sharpe=2.5 / 250**0.5, skew=-3, kurtosis=10, n=1250,
    ...                             n_trials=100, sharpe_variance=0.5 / 250), 4)
    0.9004
    """
    if returns is not None:
        sharpe, skew, kurtosis, n = moments(returns)
    if sharpe is None or skew is None or kurtosis is None or n is None:
        raise StatsError("pass the returns, or sharpe, skew, kurtosis and n.")
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    return psr_from_moments(sharpe, benchmark, skew, kurtosis, n)


def min_track_record_length(returns: Any = None, *, benchmark_sharpe: float = 0.0,
                            confidence: float = 0.95, sharpe: float | None = None,
                            skew: float | None = None, kurtosis: float | None = None) -> float:
    """Minimum number of observations for the Sharpe ratio to beat ``benchmark_sharpe``
    with probability ``confidence`` (Bailey & López de Prado 2012)::

        MinTRL = 1 + (1 - g3 * SR + (g4 - 1) / 4 * SR**2) * (Z_confidence / (SR - SR*))**2

    Per-period Sharpe ratios, non-excess kurtosis. ``inf`` when the Sharpe ratio does not
    exceed the benchmark (no track record is long enough).
    """
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}.")
    if returns is not None:
        sharpe, skew, kurtosis, _ = moments(returns)
    if sharpe is None or skew is None or kurtosis is None:
        raise StatsError("pass the returns, or sharpe, skew and kurtosis.")
    if math.isnan(sharpe):
        return math.nan
    if sharpe <= benchmark_sharpe:
        return math.inf
    variance = sharpe_estimator_variance(sharpe, skew, kurtosis)
    z = _special.ndtri(confidence)
    return float(1.0 + variance * (z / (sharpe - benchmark_sharpe)) ** 2)


def sharpe_of_columns(returns: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio of each column (``std(ddof=1)``; NaN for zero dispersion)."""
    values = np.asarray(returns, dtype=float)
    mean = values.mean(axis=0)
    std = values.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 1e-14, mean / std, np.nan)


@dataclass(frozen=True)
class PBOResult:
    """Probability of backtest overfitting and its companions (CSCV).

    Attributes
    ----------
    pbo
        Share of the train/test combinations where the configuration best in sample
        ranks at or below the median out of sample (logit <= 0).
    logits
        Per combination, ``log(w / (1 - w))`` with ``w`` the relative out-of-sample rank of
        the in-sample best (rank / (N + 1)).
    in_sample, out_of_sample
        Per combination, the performance of the in-sample best, in and out of sample.
    degradation_slope, degradation_intercept
        Least-squares line of out-of-sample on in-sample performance of the selected
        configurations (a negative slope: the better in sample, the worse out of sample).
    probability_of_loss
        Share of combinations where the selected configuration's out-of-sample
        performance is below 0.
    n_splits, n_configurations
        The ``S`` submatrices and ``N`` columns used.
    """

    pbo: float
    logits: np.ndarray
    in_sample: np.ndarray
    out_of_sample: np.ndarray
    degradation_slope: float
    degradation_intercept: float
    probability_of_loss: float
    n_splits: int
    n_configurations: int

    def summary(self) -> dict[str, float]:
        return {"pbo": self.pbo, "degradation_slope": self.degradation_slope,
                "degradation_intercept": self.degradation_intercept,
                "probability_of_loss": self.probability_of_loss,
                "logit_mean": float(np.mean(self.logits)),
                "n_combinations": float(len(self.logits)), "n_splits": float(self.n_splits),
                "n_configurations": float(self.n_configurations)}


def probability_of_backtest_overfitting(
    returns: Any, n_splits: int = 16,
    performance: Callable[[np.ndarray], np.ndarray] = sharpe_of_columns,
) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    Bailey, Borwein, López de Prado & Zhu (2017): the ``T x N`` matrix of per-period
    returns of ``N`` configurations is cut into ``S`` blocks of consecutive rows; for each
    of the ``C(S, S/2)`` ways to pick half of the blocks as "in sample" (the rest out of
    sample), the configuration with the best in-sample performance is located in the
    out-of-sample ranking. PBO is the share of combinations where it lands in the bottom
    half.

    With the default performance (the per-period Sharpe ratio) the combinations are
    streamed (:mod:`foldwise._cscv`): memory stays bounded whatever ``N``, beyond the
    matrix itself, which is only read (a float64 array is not copied). A custom
    ``performance`` is called on each combination's halves of the matrix.

    Parameters
    ----------
    returns
        ``T x N`` per-period returns (a DataFrame's columns are the configurations). Rows
        with a NaN are dropped. Rows beyond a multiple of ``n_splits`` are dropped from the
        start, so every block has the same length.
    n_splits
        ``S``, even, >= 2 (the paper uses 16).
    performance
        Maps a ``t x N`` block to ``N`` scores (higher is better); per-period Sharpe by
        default.

    Returns
    -------
    PBOResult
    """
    matrix = np.asarray(returns.to_numpy() if isinstance(returns, pd.DataFrame) else returns,
                        dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise StatsError(
            f"PBO needs a T x N matrix of returns with N >= 2 configurations, got shape "
            f"{matrix.shape}.")
    if n_splits < 2 or n_splits % 2:
        raise StatsError(f"n_splits must be even and >= 2, got {n_splits}.")
    n_combinations = math.comb(n_splits, n_splits // 2)
    if n_combinations > MAX_CSCV_COMBINATIONS:
        raise StatsError(
            f"n_splits={n_splits} gives C({n_splits}, {n_splits // 2}) = {n_combinations} "
            f"combinations, more than {MAX_CSCV_COMBINATIONS}; use n_splits <= 16.")
    used = kept_rows(matrix, n_splits)
    rows = (used.stop - used.start) if isinstance(used, slice) else len(used)
    if rows < 2 * n_splits:
        complete = int((~np.isnan(matrix).any(axis=1)).sum())
        raise StatsError(
            f"{complete} complete rows are too few for {n_splits} blocks of at least 2 "
            "rows; lower n_splits or pass a longer history.")
    n_config = matrix.shape[1]
    if performance is sharpe_of_columns:
        selection = cscv_sharpe_selection(matrix, n_splits, rows=used)
        if not selection.usable.any():
            raise StatsError(
                "every configuration had an undefined performance in every split.")
        omega = selection.rank[selection.usable] / (n_config + 1)
        return _summarize_pbo(np.log(omega / (1 - omega)),
                              selection.in_sample[selection.usable],
                              selection.out_of_sample[selection.usable], n_splits, n_config)
    matrix = matrix[used]
    from scipy.stats import rankdata

    blocks = np.split(np.arange(rows), n_splits)
    logits, in_sample, out_of_sample = [], [], []
    for chosen in combinations(range(n_splits), n_splits // 2):
        train = np.concatenate([blocks[i] for i in chosen])
        test = np.concatenate([blocks[i] for i in range(n_splits) if i not in chosen])
        is_perf = performance(matrix[train])
        oos_perf = performance(matrix[test])
        if np.isnan(is_perf).all():
            continue
        best = int(np.nanargmax(is_perf))
        # Relative rank of the in-sample best among the out-of-sample scores (1 = worst);
        # ties share the average rank, NaN scores count as worst.
        filled = np.where(np.isnan(oos_perf), -np.inf, oos_perf)
        rank = rankdata(filled)[best]
        omega = rank / (n_config + 1)
        logits.append(math.log(omega / (1 - omega)))
        in_sample.append(float(is_perf[best]))
        out_of_sample.append(float(oos_perf[best]))
    if not logits:
        raise StatsError("every configuration had an undefined performance in every split.")
    return _summarize_pbo(np.array(logits), np.array(in_sample), np.array(out_of_sample),
                          n_splits, n_config)


def _summarize_pbo(logit_array: np.ndarray, is_array: np.ndarray, oos_array: np.ndarray,
                   n_splits: int, n_config: int) -> PBOResult:
    finite = np.isfinite(is_array) & np.isfinite(oos_array)
    if finite.sum() >= 2 and np.ptp(is_array[finite]) > 0:
        slope, intercept = np.polyfit(is_array[finite], oos_array[finite], 1)
    else:
        slope, intercept = math.nan, math.nan
    return PBOResult(
        pbo=float(np.mean(logit_array <= 0)), logits=logit_array, in_sample=is_array,
        out_of_sample=oos_array, degradation_slope=float(slope),
        degradation_intercept=float(intercept),
        probability_of_loss=float(np.mean(oos_array[np.isfinite(oos_array)] < 0)),
        n_splits=n_splits, n_configurations=n_config)

