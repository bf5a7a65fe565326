"""Overfitting statistics of an optimization, from its stored runs.

* Per fold, the **deflated Sharpe ratio** of the chosen set's training returns: its
  selection among the fold's ``N`` distinct parameter sets, with the variance of their
  per-period training Sharpe ratios (Bailey & López de Prado 2014).
* For the whole walk-forward, the **probability of backtest overfitting** by CSCV on the
  ``T x N`` matrix of per-period returns of every distinct parameter set evaluated (their
  full-history runs), and the PSR / DSR of the stitched out-of-sample curve with ``N`` the
  number of distinct sets tried.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from foldwise.backtest import BacktestResult
from foldwise.stats import (
    PBOResult,
    deflated_sharpe_ratio,
    moments,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)

__all__ = ["column_sharpes", "fold_dsr", "overfitting_analysis", "overfitting_summary"]

#: A standard deviation at most this is no dispersion (as in :mod:`foldwise.metrics`).
_ZERO_DISPERSION = 1e-14


def fold_dsr(chosen_train_returns: np.ndarray, train_sharpes: Sequence[float],
             periods_per_year: float) -> float:
    """DSR of a fold's choice: its training returns against the fold's distinct sets.

    ``train_sharpes`` are the annualized training Sharpe ratios of the distinct sets tried.
    """
    per_period = np.asarray(train_sharpes, dtype=float) / math.sqrt(periods_per_year)
    per_period = per_period[np.isfinite(per_period)]
    if per_period.size == 0:
        return math.nan
    variance = float(per_period.var(ddof=1)) if per_period.size > 1 else 0.0
    return deflated_sharpe_ratio(chosen_train_returns, n_trials=per_period.size,
                                 sharpe_variance=variance)


def column_sharpes(matrix: np.ndarray, chunk_elements: int = 1 << 20) -> np.ndarray:
    """Per column of the ``T x N`` matrix, the per-period Sharpe ratio of
    :func:`foldwise.stats.moments` (NaN entries dropped; NaN below 3 observations or
    without dispersion), computed the same way, column block by column block.

    Columns without NaN are done together (each is summed along its contiguous copy, as
    ``moments`` sums a column); a column with NaN goes through ``moments`` itself.
    """
    n_rows, n_columns = matrix.shape
    out = np.full(n_columns, np.nan)
    if n_rows < 3:
        return out
    width = max(1, chunk_elements // n_rows)
    for lo in range(0, n_columns, width):
        hi = min(lo + width, n_columns)
        block = np.ascontiguousarray(matrix[:, lo:hi].T)  # no copy for a column-major matrix
        gaps = np.isnan(block).any(axis=1)
        mean = block.sum(axis=1) / n_rows
        centred = block - mean[:, None]
        np.multiply(centred, centred, out=centred)
        std = np.sqrt(centred.sum(axis=1) / (n_rows - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[lo:hi] = np.where(std > _ZERO_DISPERSION, mean / std, np.nan)
        for column in np.flatnonzero(gaps):
            out[lo + column] = moments(block[column])[0]
    return out


def overfitting_summary(oos: BacktestResult, matrix: np.ndarray | None,
                        n_splits: int = 16) -> dict[str, float]:
    """PBO (when a returns matrix is given), and the PSR / DSR of the stitched curve."""
    return overfitting_analysis(oos, matrix, n_splits)[0]


def overfitting_analysis(oos: BacktestResult, matrix: np.ndarray | None, n_splits: int = 16
                         ) -> tuple[dict[str, float], PBOResult | None]:
    """:func:`overfitting_summary` and the :class:`~foldwise.stats.PBOResult` behind it
    (its logits and the in- / out-of-sample performance of every CSCV combination, for the
    HTML report's figures), or None where PBO was not computed (fewer than two sets)."""
    summary: dict[str, float] = {}
    details: PBOResult | None = None
    oos_returns = oos.arrays.net
    summary["oos_psr"] = probabilistic_sharpe_ratio(oos_returns)
    if matrix is not None and matrix.shape[1] >= 2:
        per_period = column_sharpes(matrix)
        per_period = per_period[np.isfinite(per_period)]
        summary["n_configurations"] = float(matrix.shape[1])
        summary["oos_dsr"] = deflated_sharpe_ratio(
            oos_returns, n_trials=matrix.shape[1],
            sharpe_variance=float(per_period.var(ddof=1)) if per_period.size > 1 else 0.0)
        splits = n_splits
        while splits > 2 and matrix.shape[0] < 2 * splits:
            splits -= 2
        details = probability_of_backtest_overfitting(matrix, n_splits=splits)
        summary.update({f"pbo_{k}" if not k.startswith("pbo") else k: v
                        for k, v in details.summary().items()})
    else:
        summary["n_configurations"] = float(0 if matrix is None else matrix.shape[1])
        summary["oos_dsr"] = math.nan
        summary["pbo"] = math.nan
    return summary, details
