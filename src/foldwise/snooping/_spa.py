"""White's Reality Check and Hansen's test for Superior Predictive Ability.

Both ask whether the best of ``N`` parameter sets beats a benchmark once the search over
``N`` is accounted for. Null hypothesis: no set's expected return exceeds the benchmark's,
``max_k E[d_k] <= 0`` with ``d_k = r_k - b``. The statistic is the largest mean
differential, scaled by ``sqrt(T)`` (Reality Check; White 2000, "A Reality Check for Data
Snooping", Econometrica 68(5)) or studentized by each set's long-run standard deviation
(SPA; Hansen 2005, "A Test for Superior Predictive Ability", JBES 23(4)):

    T_SPA = max(0, max_k sqrt(T) mean(d_k) / omega_k)

Its null distribution comes from the stationary bootstrap, recentred: each resampled mean
is taken relative to ``g(mean(d_k))``, with three choices (Hansen's lower, consistent and
upper p-values):

    upper       g(x) = x                       every set as if exactly at the benchmark
                                               (White's choice: conservative)
    consistent  g(x) = x if x >= -sqrt(omega^2 / T * 2 log log T) else 0
                                               sets clearly worse than the benchmark drop
                                               out of the null distribution
    lower       g(x) = max(x, 0)               every set worse in sample is left at its mean

``p = share of replications whose recentred maximum exceeds the statistic``. The
consistent p-value is the one to read; lower and upper bound it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from foldwise._exact_json import ExactJSONFields

from ._bootstrap import SeedLike
from ._engine import bootstrap_maxima
from ._inputs import Differentials, prepare
from ._setup import Setup, setup

__all__ = ["RealityCheckResult", "SPAResult", "reality_check", "spa_centers", "spa_result",
           "spa_test"]


def _seed_text(seed: Any) -> str:
    text = str(seed)
    return text if len(text) <= 24 else text[:21] + "..."


@dataclass(frozen=True)
class SPAResult(ExactJSONFields):
    """Hansen's test for Superior Predictive Ability.

    Attributes
    ----------
    pvalue
        The consistent p-value: the probability, were no set better than the benchmark,
        of a best set looking at least this good. Small (say below 0.05): the best set
        beats the benchmark even after the search over all sets.
    pvalue_lower, pvalue_upper
        Hansen's lower and upper p-values (recentering fewer / all sets), which bracket
        the consistent one; the upper is the (studentized) Reality Check.
    statistic
        ``max(0, max_k sqrt(T) mean(d_k) / omega_k)`` (or ``sqrt(T) mean(d_k)`` unstudentized).
    best
        The label of the set with the largest statistic.
    best_mean
        Its mean per-period return in excess of the benchmark.
    n_sets, n_obs
        ``N`` sets tested over ``T`` periods.
    n_excluded
        Sets left out of a studentized test because their differential is constant
        (a set identical to the benchmark cannot beat it).
    n_bootstrap, block_length, seed
        Replications, the stationary bootstrap's mean block length, and the seed's entropy
        (the same inputs with ``seed=`` this value repeat the p-values exactly).
    studentized
        Whether each set's differential was divided by its long-run standard deviation.
    bootstrap_statistics
        ``(n_bootstrap, 3)``: per replication, the recentred maximum (floored at 0) for
        the lower, consistent and upper recentering.
    """

    pvalue: float
    pvalue_lower: float
    pvalue_upper: float
    statistic: float
    best: Hashable
    best_mean: float
    n_sets: int
    n_obs: int
    n_excluded: int
    n_bootstrap: int
    block_length: float
    seed: Any
    studentized: bool
    bootstrap_statistics: np.ndarray = field(repr=False, compare=False)

    @property
    def pvalues(self) -> dict[str, float]:
        """``{"lower": ..., "consistent": ..., "upper": ...}``."""
        return {"lower": self.pvalue_lower, "consistent": self.pvalue,
                "upper": self.pvalue_upper}

    def critical_value(self, alpha: float = 0.05, kind: str = "consistent") -> float:
        """The ``1 - alpha`` quantile of the bootstrap distribution of the statistic."""
        column = {"lower": 0, "consistent": 1, "upper": 2}[kind]
        return float(np.quantile(self.bootstrap_statistics[:, column], 1.0 - alpha))

    def summary(self) -> str:
        """A few lines saying what was tested and what came out."""
        how = "studentized" if self.studentized else "not studentized"
        excluded = (f"; {self.n_excluded} set(s) with a constant differential left out"
                    if self.n_excluded else "")
        return "\n".join([
            f"Hansen's SPA test: {self.n_sets} sets x {self.n_obs} periods against the "
            f"benchmark ({how}{excluded})",
            f"  best set {self.best!r}: mean excess {self.best_mean:.3g} per period, "
            f"statistic {self.statistic:.3f}",
            f"  p-value {self.pvalue:.4f} (consistent; lower {self.pvalue_lower:.4f}, upper "
            f"{self.pvalue_upper:.4f})",
            f"  stationary bootstrap: {self.n_bootstrap} replications, mean block length "
            f"{self.block_length:.2f}, seed {_seed_text(self.seed)}",
        ])

    def __str__(self) -> str:
        return self.summary()



@dataclass(frozen=True)
class RealityCheckResult:
    """White's Reality Check for data snooping.

    Attributes
    ----------
    pvalue
        The probability, were every set exactly as good as the benchmark, of the best set
        looking at least this good. Conservative when many sets are worse than the
        benchmark (their recentering inflates the null distribution); Hansen's SPA
        (:func:`spa_test`) is not.
    statistic
        ``max_k sqrt(T) mean(d_k)`` (divided by ``omega_k`` when studentized).
    best, best_mean, n_sets, n_obs, n_excluded, n_bootstrap, block_length, seed, studentized
        As in :class:`SPAResult`.
    bootstrap_statistics
        ``(n_bootstrap,)`` recentred maxima.
    """

    pvalue: float
    statistic: float
    best: Hashable
    best_mean: float
    n_sets: int
    n_obs: int
    n_excluded: int
    n_bootstrap: int
    block_length: float
    seed: Any
    studentized: bool
    bootstrap_statistics: np.ndarray = field(repr=False, compare=False)

    def critical_value(self, alpha: float = 0.05) -> float:
        """The ``1 - alpha`` quantile of the bootstrap distribution of the statistic."""
        return float(np.quantile(self.bootstrap_statistics, 1.0 - alpha))

    def summary(self) -> str:
        """A few lines saying what was tested and what came out."""
        how = "studentized" if self.studentized else "not studentized"
        return "\n".join([
            f"White's Reality Check: {self.n_sets} sets x {self.n_obs} periods against the "
            f"benchmark ({how})",
            f"  best set {self.best!r}: mean excess {self.best_mean:.3g} per period, "
            f"statistic {self.statistic:.3f}",
            f"  p-value {self.pvalue:.4f}",
            f"  stationary bootstrap: {self.n_bootstrap} replications, mean block length "
            f"{self.block_length:.2f}, seed {_seed_text(self.seed)}",
        ])

    def __str__(self) -> str:
        return self.summary()


def _statistics(data: Differentials, prepared: Setup) -> np.ndarray:
    """``mean_k * scale_k``, ``-inf`` for excluded sets."""
    return np.where(prepared.scale > 0, data.mean * prepared.scale, -np.inf)


def _best(data: Differentials, stats: np.ndarray) -> tuple[Hashable, float, float]:
    k = int(np.argmax(stats))
    return data.labels[k], float(data.mean[k]), float(stats[k])


def spa_test(returns: Any, benchmark: Any = 0.0, *, n_bootstrap: int = 1000,
             block_length: float | str = "auto", seed: SeedLike = None,
             studentize: bool = True) -> SPAResult:
    """Hansen's (2005) test for Superior Predictive Ability of the best of ``N`` sets.

    Parameters
    ----------
    returns
        ``T x N`` per-period returns, a column per parameter set (a DataFrame's columns
        label the sets). No NaN: align the sets on common periods first.
    benchmark
        The benchmark's per-period returns: a series of length ``T`` (buy and hold, an
        equal-weight universe, ...) or a constant (``0``: staying flat; a per-period
        risk-free rate).
    n_bootstrap
        Stationary-bootstrap replications (1000 gives p-values within about +-0.03 of
        their limit around 0.5, +-0.014 around 0.05, at two standard errors).
    block_length
        The stationary bootstrap's mean block length in periods, or ``"auto"``: the median
        over the sets of the Politis & White (2004) optimal block length of their
        differentials (with the Patton, Politis & White 2009 correction).
    seed
        An int, a :class:`numpy.random.Generator` or None (fresh entropy, reported as
        ``result.seed``). The same inputs and seed give the same p-values.
    studentize
        Divide each set's mean differential by its long-run standard deviation (Hansen's
        statistic, the default); ``False`` compares raw means (as ``arch.bootstrap.SPA``
        does).

    Returns
    -------
    SPAResult

    Notes
    -----
    Cost: one FFT pass over the matrix per long-run variance (and one more for
    ``block_length="auto"``), then ``n_bootstrap x T x N`` multiply-adds as BLAS matrix
    products of the resamples' counts with the returns; memory beyond the returns is a few
    ``256 x max(T, N)`` arrays. 1,000 replications over 5,000 sets x 2,500 days take a few
    seconds (``benchmarks/bench_snooping.py``).

    Examples
    --------
    Twenty sets without skill and one with an edge of 0.1% a day:

    >>> rng = np.random.default_rng(0)
    >>> r = rng.normal(0.0, 0.01, size=(1000, 21))
    >>> r[:, 7] += 0.001
    >>> result = spa_test(r, 0.0, n_bootstrap=500, block_length=1.0, seed=1)
    >>> result.best, result.pvalue < 0.05
    (7, True)
    """
    data = prepare(returns, benchmark)
    prepared = setup(data, block_length=block_length, studentize=studentize, seed=seed,
                     n_bootstrap=n_bootstrap)
    maxima = bootstrap_maxima(data, block_length=prepared.block_length,
                              n_bootstrap=n_bootstrap, root=prepared.root,
                              scale=prepared.scale, centers=spa_centers(data, prepared))
    return spa_result(data, prepared, maxima, n_bootstrap=n_bootstrap, studentize=studentize)


def spa_centers(data: Differentials, prepared: Setup) -> np.ndarray:
    """The SPA's three recenterings of the means, as rows: lower, consistent, upper."""
    mean = data.mean
    return np.vstack([np.maximum(mean, 0.0), np.where(prepared.relevant, mean, 0.0), mean])


def spa_result(data: Differentials, prepared: Setup, maxima: np.ndarray, *,
               n_bootstrap: int, studentize: bool) -> SPAResult:
    """The :class:`SPAResult` from the ``(n_bootstrap, 3)`` recentred maxima of
    :func:`spa_centers` (not yet floored at 0)."""
    maxima = np.maximum(maxima, 0.0)
    stats = _statistics(data, prepared)
    best, best_mean, top = _best(data, stats)
    statistic = max(top, 0.0) if math.isfinite(top) else 0.0
    # ">=": with no set above the benchmark the statistic is 0 and so is every floored
    # replication at or below it: p = 1, no evidence against the null (Hansen floors both)
    pvalues = (maxima >= statistic).mean(axis=0)
    return SPAResult(
        pvalue=float(pvalues[1]), pvalue_lower=float(pvalues[0]),
        pvalue_upper=float(pvalues[2]), statistic=statistic, best=best, best_mean=best_mean,
        n_sets=data.n_sets, n_obs=data.n_obs, n_excluded=prepared.n_excluded,
        n_bootstrap=n_bootstrap, block_length=prepared.block_length, seed=prepared.seed,
        studentized=studentize, bootstrap_statistics=maxima)


def reality_check(returns: Any, benchmark: Any = 0.0, *, n_bootstrap: int = 1000,
                  block_length: float | str = "auto", seed: SeedLike = None,
                  studentize: bool = False) -> RealityCheckResult:
    """White's (2000) Reality Check: does the best of ``N`` sets beat the benchmark?

    The statistic ``max_k sqrt(T) mean(d_k)`` against the stationary-bootstrap distribution
    of ``max_k sqrt(T) (mean*(d_k) - mean(d_k))`` (every set recentred, i.e. tested as if
    exactly as good as the benchmark); ``p = share of replications above the statistic``.
    Parameters as in :func:`spa_test`; ``studentize=True`` divides by each set's long-run
    standard deviation (which makes it Hansen's upper p-value, without the floor at 0).

    Returns
    -------
    RealityCheckResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = pd.DataFrame(rng.normal(0.0, 0.01, size=(500, 10)))
    >>> 0.0 < reality_check(r, n_bootstrap=200, block_length=1.0, seed=0).pvalue <= 1.0
    True
    """
    data = prepare(returns, benchmark)
    prepared = setup(data, block_length=block_length, studentize=studentize, seed=seed,
                     n_bootstrap=n_bootstrap)
    maxima = bootstrap_maxima(data, block_length=prepared.block_length,
                              n_bootstrap=n_bootstrap, root=prepared.root,
                              scale=prepared.scale, centers=data.mean[None, :])[:, 0]
    stats = _statistics(data, prepared)
    best, best_mean, statistic = _best(data, stats)
    return RealityCheckResult(
        pvalue=float((maxima > statistic).mean()), statistic=statistic, best=best,
        best_mean=best_mean, n_sets=data.n_sets, n_obs=data.n_obs,
        n_excluded=prepared.n_excluded, n_bootstrap=n_bootstrap,
        block_length=prepared.block_length, seed=prepared.seed, studentized=studentize,
        bootstrap_statistics=maxima)


def statistics_table(data: Differentials, prepared: Setup) -> pd.DataFrame:
    """Per set: the mean differential and the (studentized) statistic."""
    return pd.DataFrame({"mean_excess": data.mean,
                         "statistic": _statistics(data, prepared)},
                        index=pd.Index(data.labels, name="set"))
