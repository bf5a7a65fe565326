"""Samplers for the studies of an optimization: any Optuna sampler, TPE with a seed by default."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable

import optuna

from foldwise.errors import OptimizationError
from foldwise.storage import reseed_sampler

from ._tpe import VectorizedTPESampler

__all__ = ["SamplerSpec", "make_sampler", "reseed", "study_seed", "trial_seed"]

SamplerSpec = str | optuna.samplers.BaseSampler | Callable[[int | None], optuna.samplers.BaseSampler] | None

_BY_NAME: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: VectorizedTPESampler(seed=seed),
    "optuna-tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
}


def study_seed(seed: int | None, study_number: int, worker: int) -> int | None:
    """Seed of the sampler of one study in one worker (None stays None).

    Each fold gets its own stream (so a sequential run is reproducible fold by fold), and
    each extra worker on the same study another one (so parallel workers do not all
    suggest the same parameters).
    """
    if seed is None:
        return None
    return (seed + 1_000_003 * study_number + 7_919 * worker) % (2**32)


def trial_seed(study: int, settled: int) -> int:
    """Seed of the sampler that suggests a study's trial after ``settled`` settled ones.

    Mixed through a hash, so the streams of neighbouring trials and studies are unrelated.
    """
    digest = hashlib.blake2b(f"{study}:{settled}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def builds_vectorized_tpe(spec: SamplerSpec) -> bool:
    """Whether :func:`make_sampler` gives foldwise's TPE for ``spec`` (None, ``"tpe"`` or
    such an object)."""
    if spec is None or isinstance(spec, VectorizedTPESampler):
        return True
    return isinstance(spec, str) and spec.lower() == "tpe"


def make_sampler(spec: SamplerSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    """Build the sampler of one study.

    Parameters
    ----------
    spec
        None (TPE), a name (``"tpe"``, ``"optuna-tpe"``, ``"random"``, ``"qmc"``,
        ``"cmaes"``, ``"gp"``, ``"nsga2"``), a sampler object (copied, so studies never
        share its state), or a function ``seed -> sampler``. ``"tpe"`` (and None) is
        :class:`~foldwise.optimizer._tpe.VectorizedTPESampler`: Optuna's TPE with its
        normal log-CDF computed in C; ``"optuna-tpe"`` is Optuna's own.
    seed
        From :func:`study_seed`; passed to named samplers and to functions.
    """
    if spec is None:
        return VectorizedTPESampler(seed=seed)
    if isinstance(spec, str):
        try:
            return _BY_NAME[spec.lower()](seed)
        except KeyError:
            raise OptimizationError(
                f"unknown sampler {spec!r}; use one of {sorted(_BY_NAME)}, an Optuna sampler "
                "object, or a function seed -> sampler.") from None
    if isinstance(spec, optuna.samplers.BaseSampler):
        return copy.deepcopy(spec)
    if callable(spec):
        sampler = spec(seed)
        if not isinstance(sampler, optuna.samplers.BaseSampler):
            raise OptimizationError(
                f"the sampler function returned {type(sampler).__name__}, not an Optuna sampler.")
        return sampler
    raise OptimizationError(f"sampler must be None, a name, a sampler or a function, got {spec!r}.")


def reseed(sampler: optuna.samplers.BaseSampler, spec: SamplerSpec, seed: int) -> bool:
    """Give ``sampler`` (built by :func:`make_sampler` from ``spec``) the randomness of a new
    sampler seeded with ``seed``, in place; False where that is not known to be exact (then
    build a new one).

    The trial loop needs a sampler seeded per trial (exact resume); building a TPE sampler
    costs about 0.5 ms, a large part of a fast strategy's trial. Only the TPE and random
    samplers foldwise builds by name are re-seeded
    (:func:`foldwise.storage.reseed_sampler`); ``tests/test_samplers.py`` checks that the
    re-seeded sampler suggests exactly what a new one does.
    """
    if spec is not None and not (isinstance(spec, str)
                                 and spec.lower() in ("tpe", "optuna-tpe", "random")):
        return False
    return reseed_sampler(sampler, seed)
