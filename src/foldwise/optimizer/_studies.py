"""Stored optimizations: read one back, list them, delete one.

Layout in the Optuna storage, for an optimization named ``name``:

* ``name`` — the **manifest** study, holding the :class:`~foldwise.records.StudyManifest`.
  In cross-validated mode it is also the study whose trials are the evaluations.
* ``name/fold-00``, ``name/fold-01``, ... — one study per fold in walk-forward mode.

:func:`read_study` turns them into a :class:`~foldwise.records.StudyRecord` (through the
records module only); :func:`load_result` wraps it in a
:class:`~foldwise.WalkForwardResult` reading runs from the cache. No backtest runs.
"""

from __future__ import annotations

from typing import Any

import optuna

from foldwise._paths import resolve_root
from foldwise.aggregate import WalkForwardResult
from foldwise.cache import CACHE_DIR, BacktestCache
from foldwise.data import MarketData
from foldwise.errors import OptimizationError, StorageNotFoundError
from foldwise.records import (
    Evaluation,
    SelectionRecord,
    StoredTrial,
    StudyRecord,
    read_fold_tests,
    read_manifest,
    read_selection,
    read_trial,
)
from foldwise.splits import FoldStore
from foldwise.storage import StorageSpec, open_storage, parse_storage
from foldwise.strategy import Strategy, as_strategy

from ._plan import fold_set_name, fold_study_name
from ._rebuild import StudyRunLoader
from ._snapshots import (
    StatisticsFile,
    journal_bytes_read,
    read_snapshot,
    snapshot_path,
    write_snapshot_after_read,
)

__all__ = ["delete_study", "list_studies", "load_result", "pin_owner", "read_study",
           "read_study_keeping_snapshot", "result_of"]


def _manifest_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return sorted(n for n in optuna.get_all_study_names(storage=storage) if "/fold-" not in n)


def read_study(name: str, storage: optuna.storages.BaseStorage, location: str) -> StudyRecord:
    """The :class:`~foldwise.records.StudyRecord` of optimization ``name`` in ``storage``.

    Raises
    ------
    OptimizationError
        No such study (the message lists the studies there), or a study that foldwise did
        not create.
    """
    try:
        manifest_study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise OptimizationError(
            f"no study named {name!r} in {location}; the studies there are "
            f"{_manifest_names(storage)}. Check the name and the storage= argument.") from None
    manifest = read_manifest(manifest_study)
    if manifest is None:
        raise OptimizationError(
            f"study {name!r} in {location} was not created by foldwise.optimize (it has no "
            "foldwise manifest); open it with optuna.load_study instead.")
    if manifest.mode == "cv":
        trials = tuple(read_trial(t) for t in manifest_study.get_trials(deepcopy=False))
        return StudyRecord(name, manifest, {None: trials}, location=location)
    by_fold: dict[int | None, tuple[StoredTrial, ...]] = {}
    tests: dict[int, dict[int, Evaluation]] = {}
    selections: dict[int, SelectionRecord] = {}
    for window in manifest.folds:
        try:
            study = optuna.load_study(study_name=fold_study_name(name, window.number),
                                      storage=storage)
        except KeyError:
            by_fold[window.number] = ()
            continue
        by_fold[window.number] = tuple(read_trial(t, window.number)
                                       for t in study.get_trials(deepcopy=False))
        stored_tests = read_fold_tests(study)
        if stored_tests:
            tests[window.number] = stored_tests
        selection = read_selection(study)
        if selection is not None:
            selections[window.number] = selection
    return StudyRecord(name, manifest, by_fold, tests, location, selections)


def read_study_keeping_snapshot(name: str, spec: StorageSpec,
                                storage: optuna.storages.BaseStorage) -> StudyRecord:
    """:func:`read_study`, then keep the record as the study's snapshot when ``storage`` is
    a journal file (:mod:`._snapshots`: the next reader skips the journal's replay)."""
    read_from = journal_bytes_read(storage)
    return write_snapshot_after_read(spec, storage, read_study(name, storage, str(spec)),
                                     read_from)


def _cache(cache: Any) -> BacktestCache:
    return cache if isinstance(cache, BacktestCache) else BacktestCache(cache)


def _reading_cache(cache: Any) -> BacktestCache:
    """The cache a reader of a study opens: one that does not exist is not created (it
    reads as empty and missing runs are re-created in memory); one that cannot be written
    opens read-only by itself."""
    if isinstance(cache, BacktestCache):
        return cache
    root = resolve_root(cache)
    return BacktestCache(root, read_only=not (root / CACHE_DIR).is_dir())


def pin_owner(location: str, name: str) -> str:
    """How study ``name`` of the storage at ``location`` names itself in the cache's pins."""
    return f"{location} :: {name}"


def result_of(record: StudyRecord, cache: BacktestCache, *, strategy: Strategy | None = None,
              data: MarketData | None = None) -> WalkForwardResult:
    """The :class:`~foldwise.WalkForwardResult` of ``record``, reading runs from ``cache`` and
    re-creating those it lacks (:class:`~foldwise.optimizer._rebuild.StudyRunLoader`)."""
    return WalkForwardResult(record, StudyRunLoader(record, cache, strategy=strategy, data=data),
                             StatisticsFile(cache.root, record, writable=not cache.read_only))


def load_result(study: str, storage: Any = None, cache: Any = None, *,
                strategy: Any = None, data: MarketData | None = None) -> WalkForwardResult:
    """Read the result of optimization ``study`` back from its storage.

    Every metric of the fold tables comes from the study's records. The return series
    behind the stitched curve, the deflated Sharpe ratios and PBO are read from the cache;
    a run the cache lacks (evicted, cleared, damaged, or the cache is read-only or gone) is
    re-created from the study — the strategy re-imported from the import path it stored,
    the data from the copy kept in the foldwise directory — and ``result.runs_rebuilt``
    says how many. A study never becomes unreadable because of its cache.

    Parameters
    ----------
    study
        The study name given to :func:`foldwise.optimize`.
    storage
        The same ``storage=`` as the optimization (None: the default journal file). It
        is only read: nothing is created, and one on a read-only file system can be read
        (a file that does not exist raises
        :class:`~foldwise.errors.StorageNotFoundError`).
    cache
        The :class:`~foldwise.BacktestCache` (or its foldwise directory) of the
        optimization; None: the default. A directory that does not exist is not created,
        and one that cannot be written is opened read-only (runs it lacks are then
        re-created in memory).
    strategy
        The strategy the study ran, for a strategy that cannot be re-imported (defined in a
        notebook or a script): only needed when runs are missing from the cache. Its code
        fingerprint must be the study's.
    data
        The data the study ran on, when the study's copy of it is not in the cache's
        foldwise directory; its content hash must be the study's.
    """
    spec = storage if isinstance(storage, StorageSpec) else parse_storage(storage)
    record = read_snapshot(spec, study)
    if record is None:
        record = read_study_keeping_snapshot(study, spec, open_storage(spec, read_only=True))
    given = None if strategy is None else as_strategy(strategy)
    if given is not None and given.fingerprint != record.manifest.strategy.fingerprint:
        raise OptimizationError(
            f"the strategy given to load_result is not the code study {study!r} ran "
            f"(fingerprint {given.fingerprint[:12]}..., the study's "
            f"{record.manifest.strategy.fingerprint[:12]}...). Pass the strategy as it was.")
    return result_of(record, _reading_cache(cache), strategy=given, data=data)


def list_studies(storage: Any = None) -> list[str]:
    """Names of the optimizations in ``storage`` (None: the default journal file), sorted.

    Fold studies (``"name/fold-00"``, ...) are not listed: they belong to their
    optimization. The storage is only read: nothing is created, and one on a read-only
    file system can be listed.

    Raises
    ------
    StorageNotFoundError
        ``storage`` names a journal or SQLite file that does not exist. (The default
        journal file not existing yet just means no study: the list is empty.)
    """
    spec = storage if isinstance(storage, StorageSpec) else parse_storage(storage)
    try:
        opened = open_storage(spec, read_only=True)
    except StorageNotFoundError:
        if storage is None:
            return []
        raise
    return _manifest_names(opened)


def delete_study(name: str, storage: Any = None, cache: Any = None) -> int:
    """Delete optimization ``name``: its manifest, every fold study, its stored fold set.

    Parameters
    ----------
    storage, cache
        The ``storage=`` and ``cache=`` of the optimization (None: the defaults).

    Returns the number of Optuna studies deleted. Cached backtests are kept: a new study on
    the same data and strategy reuses them.
    """
    root = cache.root if isinstance(cache, BacktestCache) else resolve_root(cache)
    FoldStore(root).delete(fold_set_name(name))
    spec = parse_storage(storage)
    opened = open_storage(spec)
    _cache(cache).unpin(pin_owner(str(spec), name))
    names = [n for n in optuna.get_all_study_names(storage=opened)
             if n == name or n.startswith(name + "/fold-")]
    for study_name in names:
        optuna.delete_study(study_name=study_name, storage=opened)
    if spec.kind == "journal":  # stale from now on anyway: do not leave it behind
        snapshot_path(spec.location, name).unlink(missing_ok=True)
    return len(names)
