"""Compiled (numba) log density of TPE's Parzen mixtures: one pass over candidates x kernels.

Optuna's ``_MixtureOfProductDistribution.log_pdf`` scores the sampler's candidates (24 per
suggestion by default) under each Parzen estimator: for every dimension it finds the
distinct candidate values and kernels, computes the log normal mass of each (value,
kernel) pair, scatters it back into a candidates x kernels matrix, and ends with a
log-sum-exp over the kernels. On the 5 x 200-trial SMA study of ``bench_optimize.py`` (1)
that was 0.5 s of a 1.8 s run, most of it the overhead of some forty numpy calls on
matrices of a few hundred cells. :func:`mixture_log_pdf` computes the same function in one
compiled loop:

* **discrete dimension** (``step > 0``): ``log(Phi(b) - Phi(a))`` over the candidate's
  step, ``a, b = (x -+ step / 2 - mu) / sigma`` (on ``log x`` for a log scale), minus the
  kernel's mass over the whole range; computed once per distinct value and kernel;
* **continuous dimension**: the truncated normal's log density, ``-z**2 / 2 - log(sqrt(2
  pi)) - logmass(a, b) - log(sigma)``, NaN for an empty range and ``-inf`` outside it;
  the continuous dimensions are summed first and added after the others, as Optuna does;
* **categorical dimension**: the log of the kernel's weight of the candidate's category;
* then the log of each kernel's weight and the log-sum-exp over kernels (shifted by the
  row's maximum; a row of ``-inf`` gives ``-inf``, a NaN gives NaN).

The additions into each (candidate, kernel) cell run in Optuna's order, and the log mass is
:func:`foldwise.optimizer._tpe.vectorized_log_gauss_mass`'s formula, case by case, with
scipy's own ``log_ndtr`` and ``ndtr`` (the double-precision functions of
``scipy.special.cython_special``, called through their C addresses). What may differ from
the numpy computation is the last bit of ``exp``/``log1p`` (libm's against numpy's) and the
order of the final sum over kernels (sequential against numpy's pairwise), about 1e-16
relative: ``tests/test_samplers.py`` compares the values with Optuna's and checks that
integer spaces still get Optuna's suggestions.

Compiled on first use with ``cache=True`` (the machine code is kept beside this file, or in
numba's user cache directory, for the next process); imported by the sampler only when the
process has use for it (:data:`foldwise.optimizer._tpe.COMPILE_AFTER_SECONDS`,
:data:`~foldwise.optimizer._tpe.COMPILE_FOR_TRIALS`), so ``import foldwise`` does not load
numba.
"""

from __future__ import annotations

import ctypes
import math
import re
from typing import Any

import numba
import numpy as np
import scipy.special.cython_special as _cython_special
from llvmlite import binding as llvm_binding
from numba.extending import get_cython_function_address

__all__ = ["CATEGORICAL", "CONTINUOUS", "DISCRETE", "mixture_log_pdf"]

#: The kinds of a mixture's dimensions, as :func:`mixture_log_pdf` reads them.
CATEGORICAL, DISCRETE, CONTINUOUS = 0, 1, 2

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))  # Optuna's _norm_pdf_logC, the same bits


#: The C signature the compiled code calls scipy's functions with; a scipy whose
#: ``cython_special`` exports another one is not called (ImportError: Optuna's pass stays).
_SIGNATURE = b"double (double, int __pyx_skip_dispatch)"


def _double_function(name: str) -> int:
    """The C address of scipy's double-precision ``name`` in ``cython_special`` (a fused
    function has one entry per type: the one of signature :data:`_SIGNATURE` is taken)."""
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    fused = re.compile(rf"__pyx_fuse_\d+{re.escape(name)}")
    for key, capsule in _cython_special.__pyx_capi__.items():
        if (key == name or fused.fullmatch(key)) and get_name(capsule) == _SIGNATURE:
            return int(get_cython_function_address("scipy.special.cython_special", key))
    raise ImportError(f"scipy.special.cython_special has no double-precision {name}")


def _external(name: str) -> Any:
    """scipy's double-precision ``name`` as a function compiled code calls by symbol: the
    symbol is bound to its address in this process, so the machine code can be cached."""
    symbol = f"foldwise_scipy_{name}"
    llvm_binding.add_symbol(symbol, _double_function(name))
    return numba.types.ExternalFunction(symbol, numba.float64(numba.float64, numba.intc))


_log_ndtr = _external("log_ndtr")
_ndtr = _external("ndtr")


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _log_mass_left(a: float, b: float) -> float:  # pragma: no cover - compiled
    """``log(Phi(b) - Phi(a))`` for ``a <= b <= 0``."""
    log_a = _log_ndtr(a, 0)
    log_b = _log_ndtr(b, 0)
    return log_b + math.log1p(-math.exp(log_a - log_b))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def log_gauss_mass(a: float, b: float) -> float:  # pragma: no cover - compiled
    """``log(Phi(b) - Phi(a))`` for ``a <= b``: the left tail directly, the right tail by
    symmetry, a central interval as ``log1p`` of the two tails."""
    if b <= 0:
        return _log_mass_left(a, b)
    if a > 0:
        return _log_mass_left(-b, -a)
    return math.log1p(-_ndtr(a, 0) - _ndtr(-b, 0))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _first_of_equal_kernels(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """For each kernel, the first kernel with the same location and scale (itself if none
    comes before it): repeated parameter sets give repeated kernels, whose masses are
    computed once."""
    order = np.argsort(mu, kind="mergesort")
    first = np.arange(mu.size)
    start = 0
    while start < order.size:
        end = start + 1
        while end < order.size and mu[order[end]] == mu[order[start]]:
            end += 1
        for p in range(start + 1, end):  # a run of equal locations: compare the scales
            for q in range(start, p):
                if sigma[order[q]] == sigma[order[p]]:
                    first[order[p]] = first[order[q]]
                    break
        start = end
    return first


@numba.njit(cache=True, nogil=True, error_model="numpy")
def mixture_log_pdf(x: np.ndarray, kinds: np.ndarray, mus: np.ndarray, sigmas: np.ndarray,
                    lows: np.ndarray, highs: np.ndarray, steps: np.ndarray,
                    logs: np.ndarray, category_log_weights: np.ndarray,
                    log_weights: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Log density of each row of ``x`` (candidates x dimensions) under the mixture.

    ``kinds[d]`` is :data:`CATEGORICAL`, :data:`DISCRETE` or :data:`CONTINUOUS`. For a
    numerical dimension, ``mus[d]`` and ``sigmas[d]`` are the kernels' locations and scales,
    ``lows[d]``/``highs[d]`` the adapted bounds (on the log scale where ``logs[d]``),
    ``steps[d]`` the step (0 for a continuous one). For a categorical dimension,
    ``category_log_weights[d, k, c]`` is the log weight of category ``c`` in kernel ``k``.
    ``log_weights[k]`` is the log of kernel ``k``'s weight.
    """
    n_rows, n_dims = x.shape
    n_kernels = log_weights.size
    out = np.zeros((n_rows, n_kernels))
    continuous = np.zeros((n_rows, n_kernels))
    any_continuous = False
    first_continuous = True
    for d in range(n_dims):
        kind = kinds[d]
        if kind == CATEGORICAL:
            for i in range(n_rows):
                category = np.int64(x[i, d])
                for k in range(n_kernels):
                    out[i, k] += category_log_weights[d, k, category]
        elif kind == DISCRETE:
            mu, sigma = mus[d], sigmas[d]
            first = _first_of_equal_kernels(mu, sigma)
            half = steps[d] / 2
            values = np.unique(x[:, d])
            masses = np.empty((values.size, n_kernels))
            for j in range(values.size):
                lower = values[j] - half
                upper = values[j] + half
                if logs[d]:
                    lower = math.log(lower)
                    upper = math.log(upper)
                for k in range(n_kernels):
                    if first[k] == k:
                        masses[j, k] = log_gauss_mass((lower - mu[k]) / sigma[k],
                                                      (upper - mu[k]) / sigma[k])
                    else:
                        masses[j, k] = masses[j, first[k]]
            norms = np.empty(n_kernels)
            for k in range(n_kernels):
                if first[k] == k:
                    norms[k] = log_gauss_mass((lows[d] - mu[k]) / sigma[k],
                                              (highs[d] - mu[k]) / sigma[k])
                else:
                    norms[k] = norms[first[k]]
            for i in range(n_rows):
                j = np.searchsorted(values, x[i, d])
                for k in range(n_kernels):
                    out[i, k] += masses[j, k]
                    out[i, k] -= norms[k]
        else:
            any_continuous = True
            mu, sigma = mus[d], sigmas[d]
            for k in range(n_kernels):
                a = (lows[d] - mu[k]) / sigma[k]
                b = (highs[d] - mu[k]) / sigma[k]
                norm = log_gauss_mass(a, b)
                log_sigma = math.log(sigma[k])
                for i in range(n_rows):
                    value = math.log(x[i, d]) if logs[d] else x[i, d]
                    z = (value - mu[k]) / sigma[k]
                    if a == b:
                        density = np.nan
                    elif z < a or z > b:
                        density = -np.inf
                    else:
                        density = -(z * z) / 2.0 - _LOG_SQRT_2PI - norm - log_sigma
                    if first_continuous:
                        continuous[i, k] = density
                    else:
                        continuous[i, k] += density
            first_continuous = False
    result = np.empty(n_rows)
    for i in range(n_rows):
        if any_continuous:
            for k in range(n_kernels):
                out[i, k] += continuous[i, k]
        peak = -np.inf
        for k in range(n_kernels):
            out[i, k] += log_weights[k]
            value = out[i, k]
            if value != value:
                peak = np.nan
                break
            peak = max(peak, value)
        if peak == -np.inf:
            peak = 0.0
        total = 0.0
        for k in range(n_kernels):
            total += math.exp(out[i, k] - peak)
        result[i] = math.log(total) + peak
    return result
