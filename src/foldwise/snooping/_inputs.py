"""Checked inputs of the data-snooping tests: a ``T x N`` returns matrix and a benchmark."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._errors import SnoopingError

__all__ = ["MIN_OBSERVATIONS", "Differentials", "prepare"]

#: Fewest observations a test accepts (the consistent threshold needs log(log(T)) > 0;
#: fewer than this leave the bootstrap nothing to resample).
MIN_OBSERVATIONS = 10


@dataclass(frozen=True)
class Differentials:
    """The loss differentials ``d[t, k] = returns[t, k] - benchmark[t]``, kept as their two
    parts so the ``T x N`` difference is never built.

    Attributes
    ----------
    returns
        ``T x N`` float64 per-period returns (the caller's array when it already is one).
    benchmark
        ``T`` float64 per-period benchmark returns.
    labels
        The ``N`` column labels (a DataFrame's columns, else ``0 .. N-1``).
    mean
        ``N`` mean differentials ``mean(returns[:, k]) - mean(benchmark)``.
    """

    returns: np.ndarray
    benchmark: np.ndarray
    labels: list[Hashable]
    mean: np.ndarray

    @property
    def n_obs(self) -> int:
        return int(self.returns.shape[0])

    @property
    def n_sets(self) -> int:
        return int(self.returns.shape[1])


def _returns_matrix(returns: Any) -> tuple[np.ndarray, list[Hashable], pd.Index | None]:
    if isinstance(returns, pd.DataFrame):
        values = returns.to_numpy(dtype=np.float64)
        return values, list(returns.columns), returns.index
    if isinstance(returns, pd.Series):
        return returns.to_numpy(dtype=np.float64)[:, None], [returns.name], returns.index
    try:
        values = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SnoopingError(
            f"returns must be a T x N matrix of per-period returns (a DataFrame or an "
            f"array), got {type(returns).__name__} that is not numeric: {exc}") from exc
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise SnoopingError(
            f"returns must be a T x N matrix (T periods, N parameter sets), got shape "
            f"{values.shape}.")
    return values, list(range(values.shape[1])), None


def _benchmark_series(benchmark: Any, n_obs: int, index: pd.Index | None) -> np.ndarray:
    if np.isscalar(benchmark):
        value = float(benchmark)  # type: ignore[arg-type]
        return np.full(n_obs, value)
    if isinstance(benchmark, pd.DataFrame):
        if benchmark.shape[1] != 1:
            raise SnoopingError(
                f"benchmark must be one series, got a DataFrame with {benchmark.shape[1]} "
                "columns; pass the one column (e.g. frame['name']).")
        benchmark = benchmark.iloc[:, 0]
    if isinstance(benchmark, pd.Series) and index is not None and not benchmark.index.equals(index):
        raise SnoopingError(
            "the benchmark's index differs from the returns' index; align them first, e.g. "
            "benchmark.reindex(returns.index), and drop the rows left without a value.")
    values = np.asarray(benchmark, dtype=np.float64).reshape(-1)
    if values.shape[0] != n_obs:
        raise SnoopingError(
            f"the benchmark has {values.shape[0]} observations and the returns {n_obs}; "
            "pass one benchmark return per row of the returns.")
    return values


def prepare(returns: Any, benchmark: Any = 0.0) -> Differentials:
    """Check and hold a returns matrix and its benchmark (a scalar per-period return such
    as 0 for staying flat, or a series of the returns' length)."""
    values, labels, index = _returns_matrix(returns)
    n_obs, n_sets = values.shape
    if n_sets < 1:
        raise SnoopingError("returns has no columns: pass at least one parameter set.")
    if n_obs < MIN_OBSERVATIONS:
        raise SnoopingError(
            f"returns has {n_obs} rows; the tests need at least {MIN_OBSERVATIONS} periods.")
    bench = _benchmark_series(benchmark, n_obs, index)
    bad = ~np.isfinite(values)
    if bad.any():
        columns = int(bad.any(axis=0).sum())
        raise SnoopingError(
            f"returns has {int(bad.sum())} NaN or infinite values in {columns} of its "
            f"{n_sets} columns; drop the rows or columns concerned (e.g. returns.dropna()) "
            "or fill them before testing.")
    if not np.isfinite(bench).all():
        raise SnoopingError(
            f"the benchmark has {int((~np.isfinite(bench)).sum())} NaN or infinite values; "
            "drop those rows from both the returns and the benchmark.")
    if not (values.flags.c_contiguous or values.flags.f_contiguous):
        values = np.ascontiguousarray(values)  # a matrix in either order is used as is
    mean = values.mean(axis=0) - bench.mean()
    return Differentials(values, bench, labels, mean)
