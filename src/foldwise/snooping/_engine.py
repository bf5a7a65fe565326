"""Bootstrap maxima of recentred (and studentized) mean differentials, as matrix products.

For a resample with per-observation counts ``c`` (how often each of the ``T`` rows was
drawn), the resampled mean differential of set ``k`` is
``(c @ returns[:, k] - c @ benchmark) / T``. Stacking the counts of a batch of replications
into a ``(batch, T)`` matrix turns the means of every set in every replication of the batch
into one BLAS product ``counts @ returns``; nothing of size ``B x T x N`` (or even
``B x N``) is ever held: per batch only the ``(batch, N)`` means and, per recentering, the
maximum over the sets. Memory beyond the caller's matrix: ``batch x (T + 2 N)`` floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ._bootstrap import count_groups
from ._inputs import Differentials

__all__ = ["KEEP_COUNTS_BYTES", "bootstrap_maxima", "kept_counts"]

#: A test that passes over the same resamples several times (StepM's steps) keeps their
#: counts when they take at most this much memory, and draws them again otherwise.
KEEP_COUNTS_BYTES = 64 * 2**20

#: Replications multiplied at once (several draw groups stacked).
_BATCH = 256


def bootstrap_maxima(data: Differentials, *, block_length: float, n_bootstrap: int,
                     root: np.random.SeedSequence, scale: np.ndarray, centers: np.ndarray,
                     active: np.ndarray | None = None,
                     kept: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Per replication and per recentering ``i``, the maximum over the active sets ``k`` of
    ``(mean*_k - centers[i, k]) * scale[k]``.

    Parameters
    ----------
    data
        The returns and benchmark.
    block_length, n_bootstrap, root
        The stationary bootstrap: mean block length, replications and root seed.
    scale
        ``N`` multipliers (``sqrt(T) / omega_k`` to studentize, ``sqrt(T)`` not to); a set
        with a non-positive scale never counts.
    centers
        ``(n_centers, N)`` recentering values ``g_i(mean_k)``.
    active
        ``N`` booleans: the sets the maximum is taken over (all by default).
    kept
        The resamples' counts from :func:`kept_counts` (drawn afresh when None).

    Returns
    -------
    numpy.ndarray
        ``(n_bootstrap, n_centers)``; ``-inf`` where no set counts.
    """
    n_obs = data.n_obs
    usable = scale > 0
    if active is not None:
        usable = usable & active
    centers = np.atleast_2d(centers)
    # (mean* - g) * s = mean* * s - g * s; excluded sets get -inf.
    offsets = np.where(usable[None, :], centers * scale[None, :], np.inf)
    columns = np.flatnonzero(usable)
    if columns.size * 2 > data.n_sets:
        # Most sets count: multiply the caller's matrix as it is (no copy) and let the
        # excluded sets' infinite offsets keep them out of the maxima.
        columns = np.arange(data.n_sets)
    returns = data.returns if columns.size == data.n_sets else data.returns[:, columns]
    col_scale = scale[columns] / n_obs
    col_offsets = offsets[:, columns]
    out = np.full((n_bootstrap, centers.shape[0]), -np.inf)
    if not usable.any():
        return out
    done = 0
    pending: list[np.ndarray] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal done, pending_rows
        counts = pending[0] if len(pending) == 1 else np.concatenate(pending, axis=0)
        pending.clear()
        means = counts @ returns                      # (batch, n) sums
        means -= (counts @ data.benchmark)[:, None]
        means *= col_scale[None, :]                   # resampled mean * scale
        for i in range(col_offsets.shape[0]):
            out[done:done + counts.shape[0], i] = (means - col_offsets[i]).max(axis=1)
        done += counts.shape[0]
        pending_rows = 0

    groups: Iterable[np.ndarray] = (
        kept if kept is not None else count_groups(n_obs, block_length, n_bootstrap, root))
    for group in groups:
        pending.append(group)
        pending_rows += group.shape[0]
        if pending_rows >= _BATCH:
            flush()
    if pending:
        flush()
    return out


def kept_counts(n_obs: int, block_length: float, n_bootstrap: int,
                root: np.random.SeedSequence) -> list[np.ndarray] | None:
    """The resamples' count groups, to pass to several :func:`bootstrap_maxima` calls, or
    None when they would take more than :data:`KEEP_COUNTS_BYTES`."""
    if n_bootstrap * n_obs * 8 > KEEP_COUNTS_BYTES:
        return None
    return list(count_groups(n_obs, block_length, n_bootstrap, root))
