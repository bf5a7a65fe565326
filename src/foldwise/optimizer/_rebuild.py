"""The study is the record; the cache can be rebuilt from it.

A study's records hold every metric its tables show, and the cache key of every run its
stitched curve, deflated Sharpe ratios and PBO read. When such a run is missing from the
cache (evicted, cleared, damaged, or the cache is read-only or gone), :class:`StudyRunLoader`
re-creates it from what the study keeps:

* the **strategy**, re-imported from the import path stored in the manifest and accepted
  only if its code fingerprint is the one the study ran (or given by the caller);
* the **data**, from the content-addressed copy kept next to the cache when the study was
  planned (:class:`DataCopies`, ``<root>/data/<content hash>.parquet``), accepted only if
  its content hash is the manifest's (or given by the caller, checked the same way);
* the **parameters, window and settings**, from the trial records and the manifest.

The re-created run must have exactly the key the study recorded, or it is refused. It is
stored back in the cache when the cache can be written, else kept in memory. Nothing is
re-created that the study does not reference.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foldwise.aggregate import RunLoader
from foldwise.backtest import BacktestResult
from foldwise.cache import BacktestCache, RunReturns
from foldwise.data import MarketData
from foldwise.errors import (
    ArraysNotKeptError,
    CacheArgumentError,
    CacheCorruptedError,
    CacheError,
    CacheMissError,
    FoldwiseError,
    OptimizationError,
)
from foldwise.records import Evaluation, StrategyIdentity, StudyRecord
from foldwise.strategy import Strategy, as_strategy

from ._benchmark import equal_weight_universe
from ._faults import machine_fault
from ._objective import TRAIN_END

__all__ = ["DATA_DIR", "DataCopies", "StudyRunLoader", "import_strategy", "study_runs"]

logger = logging.getLogger(__name__)

#: Subdirectory of the foldwise directory holding the studies' data copies (outside the
#: cache directory: clearing the cache keeps them).
DATA_DIR = "data"


class DataCopies:
    """Content-addressed copies of the data studies ran on: ``<root>/data/<hash>.parquet``.

    Parameters
    ----------
    root
        The foldwise directory (the cache's ``root``).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.directory = Path(root) / DATA_DIR

    def path(self, content_hash: str) -> Path:
        return self.directory / f"{content_hash}.parquet"

    def keep(self, data: MarketData) -> Path:
        """Write a copy of ``data`` unless one with its content hash is there."""
        path = self.path(data.content_hash)
        if not path.is_file():
            self.directory.mkdir(parents=True, exist_ok=True)
            data.to_parquet(path)  # atomic: a reader sees no half-written file
        return path

    def read(self, content_hash: str) -> MarketData | None:
        """The copy with ``content_hash``; None if there is none or it does not match."""
        path = self.path(content_hash)
        if not path.is_file():
            return None
        try:
            data = MarketData.read_parquet(path, layout="long")
        except (FoldwiseError, OSError, ValueError) as exc:
            logger.warning("the data copy %s cannot be read (%s)", path, exc)
            return None
        if data.content_hash != content_hash:
            logger.warning("the data copy %s does not hold the data it is named after (content "
                           "hash %s); it is ignored", path, data.content_hash)
            return None
        return data


def import_strategy(identity: StrategyIdentity) -> Strategy:
    """The strategy a study ran, imported from its stored import path.

    Raises
    ------
    OptimizationError
        No import path (a strategy defined in a notebook or script), an import that fails,
        or code whose fingerprint differs from the study's (the code changed since).
    """
    fix = ("pass the strategy the study ran: load_result(..., strategy=...), or run the "
           "same optimize call, which re-creates what is missing")
    if identity.import_path is None:
        raise OptimizationError(
            f"strategy {identity.name!r} was defined where it cannot be imported again (a "
            f"notebook cell, a script run as __main__, a lambda); {fix}.")
    module_name, _, qualname = identity.import_path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as exc:
        raise OptimizationError(
            f"strategy {identity.name!r} cannot be imported from {identity.import_path} "
            f"({type(exc).__name__}: {exc}); {fix}.") from exc
    if isinstance(found, type):
        raise OptimizationError(
            f"strategy {identity.name!r} is an instance of {identity.import_path}, which "
            f"cannot be re-created without its arguments; {fix}.")
    strategy = getattr(found, "uncached", found)  # a @cached_backtest strategy
    strategy = as_strategy(strategy)
    if strategy.fingerprint != identity.fingerprint:
        raise OptimizationError(
            f"the code of strategy {identity.name!r} at {identity.import_path} changed since "
            f"the study ran (fingerprint {strategy.fingerprint[:12]}..., the study's "
            f"{identity.fingerprint[:12]}...), so its runs cannot be re-created with it; "
            f"{fix}.")
    return strategy


@dataclass(frozen=True)
class _Recipe:
    """How to re-create one run: parameters and, for a per-fold run, its bars."""

    params: dict[str, Any]
    window: tuple[int, int] | None = None  # [lo, hi) bars of a per-fold run
    train_end: int | None = None  # bar whose date is passed as ``train_end``
    benchmark: bool = False


def _evaluation_recipes(params: Mapping[str, Any], evaluation: Evaluation,
                        ends: dict[str, int]) -> dict[str, _Recipe]:
    """Recipes of an evaluation's runs; ``ends`` holds the last bar + 1 of each window."""
    recipes = {}
    for name, digest in evaluation.runs.items():
        if name == "full":
            recipes[digest] = _Recipe(dict(params))
        elif name in ends:
            recipes[digest] = _Recipe(dict(params), (evaluation.offset, ends[name]),
                                      ends["train"] - 1)
    return recipes


def study_runs(record: StudyRecord) -> dict[str, _Recipe]:
    """Every run ``record`` references, by cache key, with how to re-create it."""
    manifest = record.manifest
    folds = {window.number: window for window in manifest.folds}
    recipes: dict[str, _Recipe] = {}
    if manifest.benchmark is not None:
        recipes[manifest.benchmark] = _Recipe({}, benchmark=True)

    def add(number: int | None, params: Mapping[str, Any], evaluation: Evaluation) -> None:
        window = folds.get(number) if number is not None else None
        ends = {} if window is None else {"train": window.train[-1][1],
                                          "test": window.test[-1][1]}
        recipes.update(_evaluation_recipes(params, evaluation, ends))

    for trials in record.trials.values():
        for trial in trials:
            for number, evaluation in trial.record.evaluations.items():
                add(number, trial.params, evaluation)
    for number, tests in record.fold_tests.items():
        by_number = {t.number: t for t in record.trials.get(number, ())}
        for trial_number, evaluation in tests.items():
            if trial_number in by_number:
                add(number, by_number[trial_number].params, evaluation)
    for number, selection in record.selections.items():  # e.g. a top_k_mean average
        if selection.evaluation is not None:
            add(number, selection.params, selection.evaluation)
    return recipes


class StudyRunLoader(RunLoader):
    """A :class:`~foldwise.aggregate.RunLoader` that re-creates what the cache lacks.

    Parameters
    ----------
    record
        The study.
    cache
        Where runs are read first, and stored back when re-created.
    strategy, data
        The study's strategy and data when the caller has them (``optimize`` does); else
        they are re-imported and read from the study's data copy, when a run is missing.

    Attributes
    ----------
    rebuilt : int
        Runs re-created because the cache did not have them (or could not give them).
    """

    def __init__(self, record: StudyRecord, cache: BacktestCache, *,
                 strategy: Strategy | None = None, data: MarketData | None = None) -> None:
        self.record = record
        self.cache = cache
        self._strategy = strategy
        self._data = data
        self._loaded: dict[str, BacktestResult] = {}
        self._returns: dict[str, RunReturns] = {}
        self._recipes: dict[str, _Recipe] | None = None
        self._cache_usable = True
        self.rebuilt = 0

    def load(self, key: str) -> BacktestResult:
        result = self._loaded.get(key)
        if result is None:
            found = self._find(key)
            assert isinstance(found, BacktestResult)  # the whole run was asked for
            result = self._loaded[key] = found
        return result

    def net_returns(self, keys: Sequence[str]) -> Iterator[np.ndarray]:
        """:meth:`RunLoader.net_returns <foldwise.aggregate.RunLoader.net_returns>`: each
        run's returns as the cache has them (its returns form: no positions read), else
        re-created from the study, and not kept, so reading the runs of every parameter set
        (PBO) holds one at a time. A run the cache stores without its arrays (cheaper to
        run again) is run again here directly, after the same key check: its metrics are
        stored and its arrays are not to be, so the cache has nothing to do (nor counts it
        in ``cache.recomputed``)."""
        for key in keys:
            result = self._loaded.get(key)
            yield (result.arrays.net if result is not None
                   else self._returns_of(key, keep=False).net)

    def returns(self, key: str) -> RunReturns:
        """:meth:`RunLoader.returns <foldwise.aggregate.RunLoader.returns>`: the returns form
        the cache has (no positions read), else the run re-created; memoized."""
        result = self._loaded.get(key)
        if result is not None:
            return RunReturns.of(result)
        found = self._returns.get(key)
        if found is None:
            found = self._returns[key] = self._returns_of(key)
        return found

    def _returns_of(self, key: str, keep: bool = True) -> RunReturns:
        found = self._find(key, keep, returns=True)
        return found if isinstance(found, RunReturns) else RunReturns.of(found)

    def _find(self, key: str, keep: bool = True, returns: bool = False
              ) -> BacktestResult | RunReturns:
        """The run ``key`` (or only its returns form, when ``returns``) from the cache, else
        re-created."""
        found = self._from_cache(key, keep, returns)
        if found is None:
            found = self._rebuild(key)
            self.rebuilt += 1
        return found

    # --- reading -----------------------------------------------------------------------

    def _from_cache(self, key: str, keep: bool = True, returns: bool = False
                    ) -> BacktestResult | RunReturns | None:
        if not self._cache_usable:
            return None
        try:
            stored = self.cache.get(key)
            if stored is None:
                return None
            return stored.run_returns() if returns else stored.result
        except ArraysNotKeptError:  # by design: cheaper to run again than to store
            return self._rebuild(key, missing=False, keep=keep)
        except CacheCorruptedError as exc:  # a damaged entry: re-created (and replaced)
            logger.info("run %s of study %r is damaged in the cache (%s); it is re-created",
                        key[:12], self.record.name, exc)
            return None
        except CacheMissError:  # evicted by another process after the lookup: a miss
            return None
        except (CacheError, OSError) as exc:
            if isinstance(exc, CacheArgumentError):
                raise
            self._cache_without_runs(exc)
            return None

    def _cache_without_runs(self, exc: BaseException) -> None:
        self._cache_usable = False
        logger.warning("the cache at %s cannot be used (%s); the runs study %r needs are "
                       "re-created in memory", self.cache.root, exc, self.record.name)

    # --- re-creating -------------------------------------------------------------------

    def _sources(self) -> tuple[Strategy, MarketData]:
        manifest = self.record.manifest
        if self._strategy is None:
            self._strategy = import_strategy(manifest.strategy)
        if self._data is None:
            self._data = DataCopies(self.cache.root).read(manifest.data.content_hash)
            if self._data is None:
                raise OptimizationError(
                    f"runs of study {self.record.name!r} are missing from the cache at "
                    f"{self.cache.root} and the study's copy of its data is not there "
                    f"({DataCopies(self.cache.root).path(manifest.data.content_hash)}); pass "
                    "the data it ran on: load_result(..., data=...), or the cache directory "
                    "the study used (cache=...).")
        elif self._data.content_hash != manifest.data.content_hash:
            raise OptimizationError(
                f"the data given for study {self.record.name!r} is not the data it ran on "
                f"(content hash {self._data.content_hash[:12]}..., the study's "
                f"{manifest.data.content_hash[:12]}...: {manifest.data.describe()}).")
        return self._strategy, self._data

    def _rebuild(self, key: str, missing: bool = True, keep: bool = True) -> BacktestResult:
        if self._recipes is None:
            self._recipes = study_runs(self.record)
        recipe = self._recipes.get(key)
        if recipe is None:
            raise OptimizationError(
                f"run {key[:12]}... is not referenced by study {self.record.name!r}, so it "
                "cannot be re-created from it.")
        if missing and self.rebuilt == 0:
            logger.warning("runs of study %r are missing from the cache at %s; they are "
                           "re-created from the study", self.record.name, self.cache.root)
        strategy, data = self._sources()
        params = dict(recipe.params)
        if recipe.benchmark:
            strategy = as_strategy(equal_weight_universe)
        if recipe.window is not None:
            if TRAIN_END in strategy.parameters and recipe.train_end is not None:
                params[TRAIN_END] = data.index[recipe.train_end]
            data = data.islice(*recipe.window)
        settings = self.record.manifest.settings
        made = self.cache.key(strategy, params, data, settings=settings).digest
        if made != key:
            raise OptimizationError(
                f"re-creating run {key[:12]}... of study {self.record.name!r} gives another "
                f"key ({made[:12]}...): the strategy, the data or foldwise's backtest engine "
                "differ from the study's. Run the study again under a new name.")
        if self._cache_usable and (keep or missing):
            try:
                return self.cache.get_or_run(strategy, params, data, settings=settings)
            except Exception as exc:
                if machine_fault(exc) is None:
                    raise
                self._cache_without_runs(exc)
        return strategy.run(data, params, settings)
