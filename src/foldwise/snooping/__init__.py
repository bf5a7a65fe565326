"""Data snooping: after trying many parameter sets, is the best better than a benchmark?

A walk-forward study tries hundreds of parameter sets; the best of them looks good partly
because it is the best. These statistics account for the search:

==============================  ============================================================
function                        answers
==============================  ============================================================
:func:`spa_test`                does the best set beat the benchmark? Hansen's (2005) SPA
                                test: consistent, lower and upper p-values, studentized
:func:`reality_check`           the same question by White's (2000) Reality Check
                                (conservative when many sets are poor)
:func:`stepm`                   which sets beat the benchmark, family-wise error ``alpha``:
                                Romano & Wolf's (2005) StepM
:func:`spa_stepm`               both of the above on the same resamples, for about the
                                cost of one
:func:`haircut_sharpe_ratio`    how much of a Sharpe ratio survives the number of trials:
                                Harvey & Liu (2015) with Bonferroni, Holm and BHY
:func:`min_backtest_length`     how many years of backtest ``N`` trials need before a
                                Sharpe ratio means anything: Bailey, Borwein, López de Prado
                                & Zhu (2014)
:func:`optimal_block_length`    Politis & White's (2004) block length (with the 2009
                                correction)
:func:`bootstrap_indices`       the stationary-bootstrap resamples the tests draw
:func:`long_run_variance`       Hansen's studentizing variance of a series' mean
==============================  ============================================================

The tests take a ``T x N`` matrix of per-period returns (a column per parameter set, e.g.
``WalkForwardResult.returns_matrix()``) and a benchmark (a return series, or a constant
such as 0 for staying flat); the differentials are ``d[t, k] = r[t, k] - b[t]``. Their
null distributions come from the stationary bootstrap (Politis & Romano 1994), seeded:
the same inputs and seed give the same p-values. Bootstrap means are computed as BLAS
products of the resamples' counts with the returns, a batch of replications at a time, so
1,000 replications over 5,000 sets x 2,500 days take seconds and never hold more than the
returns plus a few ``256 x max(T, N)`` arrays.
"""

from __future__ import annotations

from ._bootstrap import bootstrap_indices, long_run_variance, optimal_block_length
from ._errors import SnoopingError
from ._haircut import HaircutResult, haircut_sharpe_ratio
from ._inputs import MIN_OBSERVATIONS
from ._minbtl import min_backtest_length
from ._spa import RealityCheckResult, SPAResult, reality_check, spa_test
from ._stepm import StepMResult, spa_stepm, stepm

__all__ = [
    "MIN_OBSERVATIONS",
    "HaircutResult",
    "RealityCheckResult",
    "SPAResult",
    "SnoopingError",
    "StepMResult",
    "bootstrap_indices",
    "haircut_sharpe_ratio",
    "long_run_variance",
    "min_backtest_length",
    "optimal_block_length",
    "reality_check",
    "spa_stepm",
    "spa_test",
    "stepm",
]
