"""The stationary bootstrap, its automatic block length, and its long-run variance.

* **Stationary bootstrap** (Politis & Romano 1994, "The Stationary Bootstrap", JASA 89):
  a resample is built from blocks of consecutive observations (wrapping around the end)
  with geometrically distributed lengths of mean ``block_length``: each position starts
  a new block at a uniformly drawn observation with probability ``1 / block_length``,
  otherwise it takes the observation after the previous one.
* **Block length** (Politis & White 2004, "Automatic Block-Length Selection for the
  Dependent Bootstrap", Econometric Reviews 23(1), with the correction of Patton, Politis
  & White 2009, Econometric Reviews 28(4)): ``b = (2 G^2 / D)^(1/3) n^(1/3)`` with
  ``G = sum_k lambda(k/M) |k| R(k)``, ``D = 2 g(0)^2`` for the stationary bootstrap
  (``4/3 g(0)^2`` for the circular one), ``g(0) = sum_k lambda(k/M) R(k)`` and the
  flat-top window ``lambda(t) = min(1, 2 (1 - |t|))``. The bandwidth ``M = 2 m`` where ``m``
  is the first lag of the first run of ``K = max(5, sqrt(log10 n))`` consecutive sample
  autocorrelations inside ``+-2 sqrt(log10(n) / n)`` (as Patton's reference program
  counts it), capped at ``ceil(sqrt(n)) + K``; ``b`` is capped at
  ``ceil(min(3 sqrt(n), n / 3))`` and floored at 1.
* **Long-run variance** for studentizing (Hansen 2005, "A Test for Superior Predictive
  Ability", JBES 23(4), section 2.3): ``w^2 = g_0 + 2 sum_{i=1}^{n-1} k(n, i) g_i`` with the
  stationary bootstrap's kernel ``k(n, i) = (1 - i/n) (1 - q)^i + (i/n) (1 - q)^(n-i)``,
  ``q = 1 / block_length`` and ``g_i`` the sample autocovariances (divided by ``n``); every
  lag is used, all of them from one FFT per column.

Resamples are drawn in fixed groups of :data:`DRAW_GROUP` replications, group ``j`` from its
own generator (the seed's ``j``-th child :class:`numpy.random.SeedSequence`), so the same
seed gives the same resamples whatever the size of the matrix or the memory budget, and
the first ``B`` replications of a longer run are those of a run of ``B``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from scipy import fft as _fft

from ._errors import SnoopingError

__all__ = ["DRAW_GROUP", "bootstrap_indices", "long_run_variance", "optimal_block_length",
           "resolve_seed"]

#: Replications drawn from one child generator (fixed: it defines the random stream).
DRAW_GROUP = 64

#: Columns transformed at once by the FFT passes (bounds their memory).
_FFT_COLUMNS = 512

SeedLike = int | np.random.Generator | np.random.SeedSequence | None


def resolve_seed(seed: SeedLike) -> np.random.SeedSequence:
    """The root :class:`~numpy.random.SeedSequence` of a bootstrap.

    An int (or None: fresh entropy, reported in the results so the run can be repeated)
    seeds it directly; a :class:`~numpy.random.Generator` is advanced by one draw of the
    root's entropy, so passing the same generator twice gives two different runs.
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(0, 2**63 - 1)))
    if seed is None or isinstance(seed, (int, np.integer)):
        if seed is not None and int(seed) < 0:
            raise SnoopingError(f"seed must be >= 0, got {seed}.")
        return np.random.SeedSequence(None if seed is None else int(seed))
    raise SnoopingError(
        f"seed must be an int, a numpy Generator, a SeedSequence or None, got "
        f"{type(seed).__name__}.")


def _check_block_length(block_length: float, n_obs: int) -> float:
    value = float(block_length)
    if not math.isfinite(value) or value < 1.0:
        raise SnoopingError(
            f"block_length must be a finite number >= 1 (the mean block length in "
            f"observations), got {block_length!r}.")
    if value > n_obs:
        raise SnoopingError(
            f"block_length {value:g} exceeds the {n_obs} observations; pass a shorter "
            "block_length or block_length='auto'.")
    return value


def index_groups(n_obs: int, block_length: float, n_bootstrap: int,
                 root: np.random.SeedSequence) -> Iterator[np.ndarray]:
    """Stationary-bootstrap resamples as ``(group, n_obs)`` arrays of row indices.

    Group ``j`` holds replications ``j * DRAW_GROUP`` onwards, drawn from the root's
    ``j``-th child seed.
    """
    p = 1.0 / block_length
    offsets = np.arange(DRAW_GROUP * n_obs)
    for group, first in enumerate(range(0, n_bootstrap, DRAW_GROUP)):
        size = min(DRAW_GROUP, n_bootstrap - first)
        child = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, group))
        rng = np.random.default_rng(child)
        # always a full group's draws, so fewer replications are a prefix of more
        new_block = rng.random((DRAW_GROUP, n_obs)) < p
        new_block[:, 0] = True
        flat = new_block.ravel()
        block_starts = np.flatnonzero(flat)          # row-major: a row's blocks in order
        starts = rng.integers(0, n_obs, size=block_starts.size)
        # each position's block (blocks never span rows: every row opens one), then the
        # block's drawn start walked forward (wrapping) to the position: start - block
        # start, gathered once per position, + position. The running count of blocks in
        # int32 where it fits (numpy's cumulative sum of booleans straight into int64
        # took 8 times as long), gathered through intp (int32 positions take twice as long)
        running = np.cumsum(flat, dtype=np.int32 if flat.size < 2**31 else np.intp)
        block = np.asarray(running, dtype=np.intp)
        block -= 1
        indices = np.take(starts - block_starts, block, mode="clip")  # all in range
        indices += offsets
        # start < n_obs and the walk < n_obs (within a row): one subtraction wraps it
        np.subtract(indices, n_obs, out=indices, where=indices >= n_obs)
        yield indices.reshape(DRAW_GROUP, n_obs)[:size]


def count_groups(n_obs: int, block_length: float, n_bootstrap: int,
                 root: np.random.SeedSequence) -> Iterator[np.ndarray]:
    """The resamples of :func:`index_groups` as ``(group, n_obs)`` float arrays of how
    often each observation appears: a resample's mean of every column is
    ``counts @ X / n_obs``."""
    for indices in index_groups(n_obs, block_length, n_bootstrap, root):
        size = indices.shape[0]
        flat = (indices + (np.arange(size) * n_obs)[:, None]).ravel()
        counts = np.bincount(flat, minlength=size * n_obs).reshape(size, n_obs)
        yield counts.astype(np.float64)


def bootstrap_indices(n_obs: int, block_length: float, n_bootstrap: int,
                      seed: SeedLike = None) -> np.ndarray:
    """The ``(n_bootstrap, n_obs)`` row indices of stationary-bootstrap resamples.

    These are the resamples :func:`~foldwise.snooping.spa_test`,
    :func:`~foldwise.snooping.reality_check` and :func:`~foldwise.snooping.stepm` use for
    the same ``seed``, ``block_length`` and ``n_bootstrap`` (they never build this array:
    they work from the per-observation counts, a group of replications at a time).

    Examples
    --------
    >>> idx = bootstrap_indices(5, block_length=2.0, n_bootstrap=3, seed=0)
    >>> idx.shape, bool(((idx >= 0) & (idx < 5)).all())
    ((3, 5), True)
    """
    n_obs, n_bootstrap = _check_sizes(n_obs, n_bootstrap)
    block = _check_block_length(block_length, n_obs)
    root = resolve_seed(seed)
    groups = list(index_groups(n_obs, block, n_bootstrap, root))
    return np.concatenate(groups, axis=0)


def _check_sizes(n_obs: int, n_bootstrap: int) -> tuple[int, int]:
    if int(n_obs) < 2:
        raise SnoopingError(f"need at least 2 observations, got {n_obs}.")
    if int(n_bootstrap) < 1:
        raise SnoopingError(f"n_bootstrap must be >= 1, got {n_bootstrap}.")
    return int(n_obs), int(n_bootstrap)


def _fft_size(n: int, max_lag: int | None = None) -> int:
    """An FFT length ``>= n + max_lag``: no lag up to ``max_lag`` (all ``n - 1`` lags by
    default) wraps around."""
    lag = n - 1 if max_lag is None else min(max_lag, n - 1)
    return int(_fft.next_fast_len(n + lag, real=True))


def _power_spectra(chunk: np.ndarray, benchmark: np.ndarray | None,
                   max_lag: int | None = None) -> np.ndarray:
    """The squared real and imaginary parts of the FFT of each centred column of ``chunk``
    (minus the centred ``benchmark``), zero-padded to :func:`_fft_size` (autocovariances
    up to ``max_lag``) and interleaved:
    ``(k, 2 * (size // 2 + 1))``, a row per column, whose pairs sum to ``|FFT|^2``
    (the products with :func:`_projection` add them up).

    The columns are transposed into contiguous rows first (an FFT along contiguous memory
    costs half as much as along a strided axis), straight into the zero-padded array the
    FFT reads (scipy's padding would copy them again), and the spectrum is squared in
    place.
    """
    n = chunk.shape[0]
    padded = np.zeros((chunk.shape[1], _fft_size(n, max_lag)))
    rows = padded[:, :n]
    rows[...] = chunk.T
    rows -= rows.mean(axis=1, keepdims=True)
    if benchmark is not None:
        rows -= benchmark - benchmark.mean()
    spectrum = _fft.rfft(padded, axis=1, overwrite_x=True)
    squares = spectrum.view(np.float64)
    squares *= squares
    return squares


def _projection(n: int, lag_weights: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """``W`` with ``_power_spectra(x) @ W = sum_i lag_weights[i] * autocovariance_i``: the
    autocovariances (divided by n) are ``irfft(power) / n``, linear in the power spectrum,
    so a weighted sum of them is one product with the spectrum.

    ``lag_weights`` is ``(n_lags,)`` or ``(n_lags, m)`` for lags ``0 .. n_lags - 1``, with
    ``n_lags - 1 <= max_lag`` (the spectra's padding).
    """
    size = _fft_size(n, max_lag)
    half = size // 2 + 1
    c = np.full(half, 2.0)
    c[0] = 1.0
    if size % 2 == 0:
        c[-1] = 1.0
    weights = lag_weights if lag_weights.ndim == 2 else lag_weights[:, None]
    # sum_i w_i cos(2 pi f i / size) for every frequency f: the real part of w's FFT.
    cosines = _fft.rfft(weights, n=size, axis=0).real
    projection = cosines * (c / (size * n))[:, None]
    # one row per real and per imaginary square of :func:`_power_spectra`
    projection = np.repeat(projection, 2, axis=0)
    return projection if lag_weights.ndim == 2 else projection[:, 0]


def _column_chunks(n_columns: int) -> Iterator[slice]:
    for start in range(0, n_columns, _FFT_COLUMNS):
        yield slice(start, min(start + _FFT_COLUMNS, n_columns))


def _as_matrix(x: Any) -> tuple[np.ndarray, bool]:
    values = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x, dtype=np.float64)
    if values.ndim == 1:
        return values[:, None], True
    if values.ndim != 2:
        raise SnoopingError(f"expected a 1-D series or a 2-D matrix, got shape {values.shape}.")
    return values, False


def _block_length_constants(n: int) -> tuple[int, int, float, float]:
    """``(K, m_max, band, b_max)`` of Politis & White for ``n`` observations."""
    runs = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = math.ceil(math.sqrt(n)) + runs
    band = 2.0 * math.sqrt(math.log10(n) / n)
    b_max = float(math.ceil(min(3.0 * math.sqrt(n), n / 3.0)))
    return runs, m_max, band, b_max


def _block_lengths_from_covariances(cov: np.ndarray, n: int, constant: float) -> np.ndarray:
    """Optimal block lengths of the columns whose autocovariances (lags 0..m_max) are
    ``cov``; ``constant`` is 2 (stationary) or 4/3 (circular)."""
    runs, m_max, band, b_max = _block_length_constants(n)
    k = cov.shape[1]
    variance = cov[0]
    degenerate = variance <= 1e-28
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.abs(cov[1:m_max + 1] / np.where(degenerate, 1.0, variance))  # lags 1..m_max
    inside = rho < band
    # run[i]: lags i+1 .. i+runs all inside the band (i = 0 .. m_max - runs)
    n_windows = max(m_max - runs + 1, 0)
    window = np.ones((n_windows, k), dtype=bool)
    for offset in range(runs):
        window &= inside[offset:offset + n_windows]
    found = window.any(axis=0)
    first_lag = np.argmax(window, axis=0) + 1
    bandwidth = np.where(found, np.minimum(2 * first_lag, m_max), m_max)
    lags = np.arange(1, m_max + 1)[:, None]
    t = lags / bandwidth[None, :]
    weights = np.where(t <= 0.5, 1.0, np.maximum(2.0 * (1.0 - t), 0.0))
    g = 2.0 * (weights * lags * cov[1:m_max + 1]).sum(axis=0)
    spectral = variance + 2.0 * (weights * cov[1:m_max + 1]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (2.0 * g ** 2 / (constant * spectral ** 2)) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    b = np.where(np.isfinite(b), b, 1.0)
    b = np.clip(b, 1.0, b_max)
    return np.where(degenerate, 1.0, b)


def optimal_block_length(x: Any, bootstrap: Literal["stationary", "circular"] = "stationary"
                         ) -> Any:
    """Politis & White (2004) automatic block length, with the Patton, Politis & White
    (2009) correction, of each column.

    Parameters
    ----------
    x
        A series (1-D) or a ``T x N`` matrix (a column per series); no NaN.
    bootstrap
        ``"stationary"`` (the mean block length of the stationary bootstrap) or
        ``"circular"`` (the block length of the circular block bootstrap).

    Returns
    -------
    float or numpy.ndarray
        A float for a 1-D input, else one length per column; at least 1 (a constant column
        gets 1) and at most ``ceil(min(3 sqrt(T), T / 3))``.

    Examples
    --------
    An AR(1) series with coefficient 0.5 needs blocks of a few observations; white noise
    needs none:

    >>> rng = np.random.default_rng(0)
    >>> e = rng.standard_normal(2000)
    >>> ar = np.empty_like(e); ar[0] = e[0]
    >>> for t in range(1, e.size): ar[t] = 0.5 * ar[t - 1] + e[t]
    >>> bool(optimal_block_length(ar) > 3 * optimal_block_length(e))
    True
    """
    if bootstrap not in ("stationary", "circular"):
        raise SnoopingError(
            f"bootstrap must be 'stationary' or 'circular', got {bootstrap!r}.")
    matrix, one_dimensional = _as_matrix(x)
    n = matrix.shape[0]
    if n < 10:
        raise SnoopingError(
            f"an automatic block length needs at least 10 observations, got {n}; pass "
            "block_length explicitly.")
    if np.isnan(matrix).any():
        raise SnoopingError("x contains NaN; drop or fill the missing values first.")
    constant = 2.0 if bootstrap == "stationary" else 4.0 / 3.0
    lengths = block_lengths(matrix, constant=constant)
    return float(lengths[0]) if one_dimensional else lengths


def block_lengths(matrix: np.ndarray, *, benchmark: np.ndarray | None = None,
                  constant: float = 2.0) -> np.ndarray:
    """Optimal block lengths of the columns of ``matrix`` (minus ``benchmark``, a column
    subtracted from every column without building the difference matrix)."""
    n = matrix.shape[0]
    _, m_max, _, _ = _block_length_constants(n)
    out = np.empty(matrix.shape[1])
    # autocovariances at lags 0 .. m_max: one projection per lag
    lags = min(m_max + 1, n)
    # lags up to m_max only: half the padding (and FFT) of the long-run variance's
    projection = _projection(n, np.eye(lags), max_lag=lags - 1)
    for cols in _column_chunks(matrix.shape[1]):
        cov = (_power_spectra(matrix[:, cols], benchmark, max_lag=lags - 1) @ projection).T
        out[cols] = _block_lengths_from_covariances(cov, n, constant)
    return out


def kernel_weights(n: int, block_length: float) -> np.ndarray:
    """``[1, 2 k(n, 1), ..., 2 k(n, n-1)]``: the weights of the autocovariances in Hansen's
    long-run variance for the stationary bootstrap with mean block length ``block_length``."""
    q = 1.0 / block_length
    lags = np.arange(n, dtype=np.float64)
    log_keep = math.log1p(-q) if q < 1.0 else -math.inf
    with np.errstate(invalid="ignore"):
        kernel = ((1.0 - lags / n) * np.exp(lags * log_keep)
                  + (lags / n) * np.exp((n - lags) * log_keep))
    kernel = np.nan_to_num(kernel, nan=0.0)
    weights = 2.0 * kernel
    weights[0] = 1.0
    return weights


def long_run_variance(x: Any, block_length: float, *, benchmark: Any = None) -> Any:
    """Hansen's (2005) long-run variance of each column for the stationary bootstrap:
    ``w^2 = g_0 + 2 sum_{i=1}^{n-1} k(n, i) g_i`` (see the module docstring); the variance of
    ``sqrt(n)`` times a column's mean under the bootstrap.

    ``benchmark`` (a series) is subtracted from every column first, without building the
    difference matrix. Returns a float for a 1-D ``x``, else one value per column.

    Examples
    --------
    With ``block_length=1`` (no blocks: the i.i.d. bootstrap) it is the population variance:

    >>> x = np.array([1.0, -2.0, 3.0, 0.5])
    >>> bool(np.isclose(long_run_variance(x, 1.0), x.var()))
    True
    """
    matrix, one_dimensional = _as_matrix(x)
    n = matrix.shape[0]
    block = _check_block_length(block_length, n)
    bench = None if benchmark is None else np.asarray(benchmark, dtype=np.float64)
    result = long_run_variances(matrix, block, benchmark=bench)
    return float(result[0]) if one_dimensional else result


def long_run_variances(matrix: np.ndarray, block_length: float, *,
                       benchmark: np.ndarray | None = None) -> np.ndarray:
    """:func:`long_run_variance` of every column of a float64 matrix (a column chunk at a
    time: memory is a few times ``n x 256`` floats beyond the matrix)."""
    n = matrix.shape[0]
    projection = _projection(n, kernel_weights(n, block_length))
    out = np.empty(matrix.shape[1])
    for cols in _column_chunks(matrix.shape[1]):
        out[cols] = _power_spectra(matrix[:, cols], benchmark) @ projection
    return np.maximum(out, 0.0)
