"""foldwise's default sampler: Optuna's TPE, with its normal-CDF kernels computed in C.

On a short backtest the sampler is most of a trial: measured with py-spy on Optuna 5.0,
TPE over two integer parameters (5 studies x 230 trials) spent 30 % of its time in
``optuna.samplers._tpe._truncnorm._log_ndtr``, the log of the normal CDF at the bounds of
every Parzen kernel, for every candidate. Optuna evaluates it with a scalar Python
function per element (``np.frompyfunc`` over an ``lru_cache``); ``scipy.special.log_ndtr``
evaluates the same function in vectorized C, 18 times faster on 2,000 values. The next
largest part, ``_truncnorm._log_gauss_mass`` (the log of the normal mass between two
bounds), computes in complex numbers and with Optuna's polynomial ``erf``; computed in
float64 with scipy's ``log_ndtr`` and ``ndtr`` it takes about a tenth less of the
sampler's time.

:class:`VectorizedTPESampler` is :class:`optuna.samplers.TPESampler`, unchanged in every
argument and step, except that while it samples, those two functions are
:func:`vectorized_log_ndtr` and :func:`vectorized_log_gauss_mass` (the same formulas, case
by case, with scipy's kernels). ``log_ndtr`` agrees with Optuna's to 7e-16 relative where
the CDF is below one half; above it scipy's is the more accurate one (it computes
``log1p(-ndtr(-x))`` where Optuna takes the log of a number close to 1: differences up to
6e-8 relative on values of about -1e-9, 5e-17 absolute). The log mass agrees with Optuna's
to about 1e-12 absolute (Optuna's ``erf`` is the less accurate one; both are checked
against the mass computed with 50 digits in ``tests/test_samplers.py``). What that changes:

* **integer and categorical spaces:** the same suggestions as Optuna's TPE with the same
  seed, in every study tested (``tests/test_samplers.py``);
* **continuous parameters:** the same distribution, but a suggestion goes through the
  inverse CDF, so it may differ from Optuna's in the last bits, and the studies then part.

The inverse, ``_truncnorm._ndtri_exp`` (the ``x`` whose log-CDF is ``y``, which turns a
uniform draw into a kernel's sample), is Newton's method in numpy in Optuna, 60 times
slower than ``scipy.special.ndtri_exp`` on a batch of 48 draws, with which it agrees to
1.4e-15 relative (:func:`vectorized_ndtri_exp`). An integer suggestion rounds that sample
to its step, so it changes only if the sample lies within about 1e-15 of half a step.

A fourth function goes with them: ``probability_distributions._log_gauss_mass_unique``
finds the distinct (lower, upper) pairs of a candidates x kernels matrix (two argsorts and
a cumulative sum) so that Optuna's slow mass runs once per pair. With the mass in C that
search cost more than the duplicates it saved (few: each candidate meets each kernel
once), so :func:`vectorized_log_gauss_mass` stands for it and computes every element: the
same function of each pair, so the same values and suggestions. Measured on the 5 x
200-trial SMA study of ``bench_optimize.py`` (1): the sampler's time went from 2.34 s to
2.23 s, with the same trials.

The mixture's log density itself, ``_MixtureOfProductDistribution.log_pdf`` (the scores of
the candidates under the two Parzen estimators), was then the sampler's largest part: about
forty numpy calls per estimator on matrices of a few hundred cells, 0.5 s of the 1.8 s
in-memory run of that study. :func:`parzen_log_pdf` computes it in one compiled pass
(:mod:`foldwise.optimizer._tpe_compiled`, numba: the same formulas, the masses of repeated
kernels computed once), in about half the time of the numpy pass. Loading numba costs a
process about half a second, so a process loads it before an ``optimize`` call planning
:data:`COMPILE_FOR_TRIALS` trials, or once the numpy pass has cost it
:data:`COMPILE_AFTER_SECONDS` (see there): a short study never loads it, a long-lived
process or a large study runs compiled. Values agree with the numpy pass to about 1e-14
(``exp``/``log1p`` from libm, the final sum over kernels in sequence), and integer spaces
get Optuna's suggestions with either pass (``tests/test_samplers.py``).

``sampler="optuna-tpe"`` gives Optuna's own sampler, for a study that must repeat one run
with stock Optuna.

How: Optuna's TPE looks these functions up as attributes of ``_truncnorm`` and
``probability_distributions`` at each call, so the sampler swaps them in for the duration
of its own sampling calls (under a lock, with a count, so nested and concurrent calls
restore Optuna's functions once the last one ends). A stock TPE sampler sampling in
another thread at that very moment computes with scipy's functions too. Where the module's
layout differs (another Optuna), the sampler is Optuna's TPE as it is.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import optuna
from scipy.special import log_ndtr, ndtr, ndtri_exp

try:  # private to Optuna: where it is missing, the sampler is Optuna's TPE unchanged
    from optuna.samplers._tpe import _truncnorm, probability_distributions

    _OPTUNA_LOG_NDTR = getattr(_truncnorm, "_log_ndtr", None)
    _OPTUNA_LOG_GAUSS_MASS = getattr(_truncnorm, "_log_gauss_mass", None)
    _OPTUNA_NDTRI_EXP = getattr(_truncnorm, "_ndtri_exp", None)
    _OPTUNA_LOG_GAUSS_MASS_UNIQUE = getattr(probability_distributions,
                                            "_log_gauss_mass_unique", None)
    _MIXTURE = getattr(probability_distributions, "_MixtureOfProductDistribution", None)
    _CATEGORICAL: Any = getattr(probability_distributions, "_BatchedCategoricalDistributions",
                                None)
    _OPTUNA_LOG_PDF: Any = getattr(_MIXTURE, "log_pdf", None)
except ImportError:  # pragma: no cover - another Optuna layout
    _OPTUNA_LOG_NDTR = _OPTUNA_LOG_GAUSS_MASS = _OPTUNA_NDTRI_EXP = None
    _OPTUNA_LOG_GAUSS_MASS_UNIQUE = _MIXTURE = _CATEGORICAL = _OPTUNA_LOG_PDF = None

logger = logging.getLogger(__name__)

__all__ = ["VectorizedTPESampler", "vectorized_log_gauss_mass", "vectorized_log_ndtr",
           "vectorized_ndtri_exp"]

_lock = threading.Lock()
_depth = 0


def vectorized_log_ndtr(a: Any) -> np.ndarray:
    """``log(Phi(a))`` elementwise, as float64 (``scipy.special.log_ndtr``)."""
    return np.asarray(log_ndtr(np.asarray(a, dtype=np.float64)), dtype=np.float64)


def vectorized_ndtri_exp(y: Any) -> np.ndarray:
    """The ``x`` with ``log(Phi(x)) == y`` elementwise, as float64
    (``scipy.special.ndtri_exp``)."""
    return np.asarray(ndtri_exp(np.asarray(y, dtype=np.float64)), dtype=np.float64)


def _log_mass_left(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(Phi(b) - Phi(a))`` for ``a <= b <= 0`` (Optuna's left case, in float64)."""
    log_a, log_b = log_ndtr(a), log_ndtr(b)
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty interval: -inf, as Optuna
        return np.asarray(log_b + np.log1p(-np.exp(log_a - log_b)), dtype=np.float64)


def vectorized_log_gauss_mass(a: Any, b: Any) -> np.ndarray:
    """``log(Phi(b) - Phi(a))`` elementwise for ``a <= b``, as float64: Optuna's
    ``_truncnorm._log_gauss_mass`` case by case (the left tail directly, the right tail
    by symmetry, a central interval as ``log1p`` of the two tails), with scipy's kernels."""
    if not (type(a) is type(b) is np.ndarray and a.dtype == b.dtype == np.float64
            and a.shape == b.shape):  # Optuna's own calls pass such arrays: no copies
        a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64),
                                   np.asarray(b, dtype=np.float64))
    out = np.empty(a.shape, dtype=np.float64)
    left = b <= 0
    right = a > 0
    central = ~(left | right)
    if left.any():
        out[left] = _log_mass_left(a[left], b[left])
    if right.any():
        out[right] = _log_mass_left(-b[right], -a[right])
    if central.any():
        with np.errstate(divide="ignore"):
            out[central] = np.log1p(-ndtr(a[central]) - ndtr(-b[central]))
    return out


def _packed(mixture: Any, x: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """The arrays :func:`foldwise.optimizer._tpe_compiled.mixture_log_pdf` reads for an
    Optuna Parzen mixture and candidates ``x`` (see its docstring), or None for a mixture of
    another layout or candidates the compiled pass must not index with (not finite, a
    category out of range: Optuna's pass says what is wrong with them)."""
    weights = np.asarray(mixture.weights, dtype=np.float64)
    distributions = mixture.distributions
    n_dims, n_kernels = len(distributions), weights.size
    if x.ndim != 2 or x.shape[1] != n_dims or not np.isfinite(x).all():
        return None
    kinds = np.empty(n_dims, dtype=np.int8)
    mus = np.zeros((n_dims, n_kernels))
    sigmas = np.ones((n_dims, n_kernels))
    lows, highs, steps = np.zeros(n_dims), np.zeros(n_dims), np.zeros(n_dims)
    logs = np.zeros(n_dims, dtype=np.bool_)
    categorical = [d for d in distributions if isinstance(d, _CATEGORICAL)]
    width = max((d.weights.shape[1] for d in categorical), default=1)
    category_log_weights = np.zeros((n_dims, n_kernels if categorical else 1, width))
    # kinds[i]: _tpe_compiled's CATEGORICAL (0), DISCRETE (1) or CONTINUOUS (2)
    for i, dist in enumerate(distributions):
        if isinstance(dist, _CATEGORICAL):
            column = x[:, i]
            if not ((column >= 0) & (column < dist.weights.shape[1])).all():
                return None
            kinds[i] = 0
            category_log_weights[i, :, :dist.weights.shape[1]] = np.log(dist.weights)
            continue
        if not hasattr(dist, "adapted_low"):  # pragma: no cover - Optuna before 4.8
            return None
        steps[i] = dist.step
        kinds[i] = 1 if dist.step != 0.0 else 2
        mus[i], sigmas[i] = dist.mu, dist.sigma
        lows[i], highs[i], logs[i] = dist.adapted_low, dist.adapted_high, dist.is_log
    return (kinds, mus, sigmas, lows, highs, steps, logs, category_log_weights,
            np.log(weights))


#: Seconds a process spends in Optuna's (numpy) ``log_pdf`` before it loads the compiled
#: one (the rent-or-buy rule). Loading costs a process 0.3-0.55 s and about 110 MB of
#: memory once (numba's first call: its registries, LLVM, then the cached machine code),
#: and the compiled pass takes about half the numpy one's time (measured on the
#: estimators of ``bench_optimize.py`` (1)): once the numpy pass has cost 0.8 s, the
#: compiled one would have saved about what the load costs, so no process pays more than
#: twice what knowing its future would have cost, a short study never loads numba, and a
#: long-lived process (a notebook, a worker) gets the compiled pass for the rest of its
#: life. Within :func:`planned_trials` (an ``optimize`` call) the rule is applied at the
#: start only, so a call's trials never stop for the load. A process whose pipeline
#: already loaded numba (:mod:`foldwise.pipeline._compiled`) loads the kernel at once.
COMPILE_AFTER_SECONDS = 0.8

#: Trials of foldwise's TPE a call plans (:func:`planned_trials`) from which the process
#: loads the compiled pass before the first one: the load pays for itself within about
#: 1,500 trials (the 5 x 200-trial study of ``bench_optimize.py`` (1) saves 0.25 s, a
#: 1,000-trial fold 0.35 s), and loaded before the trial loop its memory is a step at the
#: start rather than growth during the loop.
COMPILE_FOR_TRIALS = 2000

#: Whether Optuna's mixtures have the layout the compiled pass reads.
_COMPILED_DENSITY = _OPTUNA_LOG_PDF is not None and _CATEGORICAL is not None
_numpy_seconds = 0.0
_kernel: Any = None  # the compiled mixture_log_pdf once loaded; False where it cannot be
_kernel_lock = threading.Lock()
_planned = 0  # planned_trials blocks open in this process


def _load_kernel() -> Any:
    """Load the compiled pass and call it once on a one-kernel mixture of each kind of
    dimension (numba loads the machine code at the first call of a signature). Where it
    cannot be loaded (numba or scipy without what it needs), Optuna's pass stays, with one
    warning: the compiled pass only saves time."""
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            try:
                from foldwise.optimizer._tpe_compiled import mixture_log_pdf

                mixture_log_pdf(np.ones((1, 3)), np.array([0, 1, 2], dtype=np.int8),
                                np.ones((3, 1)), np.ones((3, 1)), np.zeros(3), np.full(3, 2.0),
                                np.array([0.0, 1.0, 0.0]), np.zeros(3, dtype=np.bool_),
                                np.zeros((3, 1, 2)), np.zeros(1))
            except Exception as exc:  # any failure leaves Optuna's pass
                logger.warning("TPE's compiled mixture density cannot be loaded (%s: %s); "
                               "Optuna's numpy one is used", type(exc).__name__, exc)
                _kernel = False
            else:
                _kernel = mixture_log_pdf
    return _kernel or None


def _earned() -> bool:
    """Whether the rent-or-buy rule says to load the compiled pass now."""
    return (_numpy_seconds >= COMPILE_AFTER_SECONDS
            or "foldwise.pipeline._compiled" in sys.modules)


def _compiled_kernel() -> Any:
    """The compiled ``mixture_log_pdf`` once this process has earned it, else None (outside
    :func:`planned_trials`: inside, only its start loads it)."""
    if _kernel is None and _planned == 0 and _earned():
        return _load_kernel()
    return _kernel or None


@contextlib.contextmanager
def planned_trials(n_trials: int) -> Iterator[None]:
    """A block of this process about to run ``n_trials`` trials of foldwise's TPE (an
    ``optimize`` call; 0 for another sampler). Its start loads the compiled pass when the
    block plans :data:`COMPILE_FOR_TRIALS` trials or more, or the rent-or-buy rule says so;
    inside it, no trial waits for the load."""
    global _planned
    if n_trials > 0 and _kernel is None and _COMPILED_DENSITY \
            and (n_trials >= COMPILE_FOR_TRIALS or _earned()):
        _load_kernel()
    with _kernel_lock:
        _planned += 1
    try:
        yield
    finally:
        with _kernel_lock:
            _planned -= 1


def parzen_log_pdf(mixture: Any, x: np.ndarray) -> np.ndarray:
    """``_MixtureOfProductDistribution.log_pdf``: Optuna's until :data:`COMPILE_AFTER_SECONDS`
    of it were spent in this process, then one compiled pass
    (:mod:`foldwise.optimizer._tpe_compiled`) for a mixture of Optuna's layout."""
    global _numpy_seconds
    kernel = _compiled_kernel()
    if kernel is not None:
        candidates = np.ascontiguousarray(x, dtype=np.float64)
        packed = _packed(mixture, candidates)
        if packed is not None:
            return np.asarray(kernel(candidates, *packed))
    started = time.perf_counter()
    out = _OPTUNA_LOG_PDF(mixture, x)
    _numpy_seconds += time.perf_counter() - started  # a race only shifts the switch
    return np.asarray(out)


def _swaps() -> list[tuple[Any, str, Any, Any]]:
    """(module, name, foldwise's function, Optuna's) for each function swapped while the
    sampler samples; empty in another Optuna layout (Optuna's TPE as it is)."""
    if _OPTUNA_LOG_NDTR is None or _OPTUNA_LOG_GAUSS_MASS is None:  # pragma: no cover
        return []
    swaps: list[tuple[Any, str, Any, Any]] = [
        (_truncnorm, "_log_ndtr", vectorized_log_ndtr, _OPTUNA_LOG_NDTR),
        (_truncnorm, "_log_gauss_mass", vectorized_log_gauss_mass, _OPTUNA_LOG_GAUSS_MASS)]
    if _OPTUNA_NDTRI_EXP is not None:
        swaps.append((_truncnorm, "_ndtri_exp", vectorized_ndtri_exp, _OPTUNA_NDTRI_EXP))
    if _OPTUNA_LOG_GAUSS_MASS_UNIQUE is not None:  # every pair computed: see the docstring
        swaps.append((probability_distributions, "_log_gauss_mass_unique",
                      vectorized_log_gauss_mass, _OPTUNA_LOG_GAUSS_MASS_UNIQUE))
    if _COMPILED_DENSITY:
        swaps.append((_MIXTURE, "log_pdf", parzen_log_pdf, _OPTUNA_LOG_PDF))
    return swaps


_SWAPS = _swaps()


@contextlib.contextmanager
def _vectorized() -> Iterator[None]:
    """Optuna's TPE computes with foldwise's functions (:data:`_SWAPS`) inside this block."""
    global _depth
    with _lock:
        _depth += 1
        for module, name, ours, _ in _SWAPS:
            setattr(module, name, ours)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for module, name, _, optunas in _SWAPS:
                    setattr(module, name, optunas)


class VectorizedTPESampler(optuna.samplers.TPESampler):
    """:class:`optuna.samplers.TPESampler` computing the normal log-CDF and log mass in C
    (see the module docstring); takes exactly Optuna's arguments."""

    #: Its randomness is a TPE sampler's (``foldwise.storage.reseed_sampler``).
    reseeds_like_tpe = True

    def sample_relative(self, study: optuna.Study, trial: Any,
                        search_space: dict[str, Any]) -> dict[str, Any]:
        with _vectorized():
            return super().sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: Any, param_name: str,
                           param_distribution: Any) -> Any:
        with _vectorized():
            return super().sample_independent(study, trial, param_name, param_distribution)
