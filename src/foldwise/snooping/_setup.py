"""What every test needs before resampling: the block length, the studentizing scales and
Hansen's consistent recentering threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._bootstrap import SeedLike, _check_block_length, block_lengths, long_run_variances
from ._bootstrap import resolve_seed as _resolve_seed
from ._errors import SnoopingError
from ._inputs import Differentials

__all__ = ["Setup", "setup"]

#: A differential whose long-run variance is at most this (times the squared scale of the
#: returns) is constant: it is excluded from studentized statistics.
_DEGENERATE = 1e-24


@dataclass(frozen=True)
class Setup:
    """Attributes
    ----------
    block_length
        Mean block length of the stationary bootstrap.
    variance
        ``N`` long-run variances ``omega_k^2`` of the differentials (Hansen's kernel).
    scale
        ``N`` multipliers of the mean differentials: ``sqrt(T) / omega_k`` (studentized) or
        ``sqrt(T)``; 0 for a set left out (a constant differential when studentizing).
    relevant
        ``N`` booleans: ``mean_k >= -sqrt(omega_k^2 / T * 2 log log T)``, the sets Hansen's
        consistent p-value recentres.
    root, seed
        The bootstrap's root seed and its entropy (pass ``seed`` back to repeat the run).
    """

    block_length: float
    variance: np.ndarray
    scale: np.ndarray
    relevant: np.ndarray
    root: np.random.SeedSequence
    seed: Any

    @property
    def n_excluded(self) -> int:
        return int((self.scale <= 0).sum())


def _check_n_bootstrap(n_bootstrap: int) -> int:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) \
            or n_bootstrap < 1:
        raise SnoopingError(f"n_bootstrap must be a positive int, got {n_bootstrap!r}.")
    return int(n_bootstrap)


def setup(data: Differentials, *, block_length: float | str, studentize: bool,
          seed: SeedLike, n_bootstrap: int) -> Setup:
    """The block length (``"auto"``: the median over the sets of the Politis & White
    optimal stationary block length of their differentials), the long-run variances, the
    scales and the relevant sets."""
    _check_n_bootstrap(n_bootstrap)
    n_obs = data.n_obs
    if isinstance(block_length, str):
        if block_length != "auto":
            raise SnoopingError(
                f"block_length must be a number >= 1 or 'auto', got {block_length!r}.")
        lengths = block_lengths(data.returns, benchmark=data.benchmark)
        block = float(np.median(lengths))
    else:
        block = _check_block_length(block_length, n_obs)
    variance = long_run_variances(data.returns, block, benchmark=data.benchmark)
    # the largest absolute value, without an |returns| temporary the size of the matrix
    spread = max(float(data.returns.max()), -float(data.returns.min()),
                 float(np.abs(data.benchmark).max()), 1e-300)
    degenerate = variance <= _DEGENERATE * spread ** 2
    root_t = math.sqrt(n_obs)
    if studentize:
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(degenerate, 0.0, root_t / np.sqrt(np.where(degenerate, 1.0,
                                                                        variance)))
    else:
        scale = np.full(data.n_sets, root_t)
    threshold = -np.sqrt(variance / n_obs * 2.0 * math.log(math.log(n_obs)))
    relevant = data.mean >= threshold
    root = _resolve_seed(seed)
    return Setup(block, variance, scale, relevant, root, root.entropy)
