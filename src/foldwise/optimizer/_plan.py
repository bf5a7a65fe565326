"""The first two steps of ``optimize``: validate the call, then plan the optimization.

* :func:`validate` checks every argument before anything is opened or stored and returns
  a :class:`Request`: typed values only (a :class:`~foldwise.Strategy`, a
  :class:`~foldwise.SearchSpace`, a :class:`~foldwise.BacktestSettings`, the cache object,
  the storage spec). Each bad argument raises a :class:`~foldwise.errors.FoldwiseError`
  that names it and the fix.
* :func:`make_plan` computes the folds once and builds the :class:`Plan`: the manifest
  that identifies the optimization and the names of its studies.
* :func:`store_plan` opens nothing new: on the already opened storage it creates the
  manifest study or compares the stored manifest (refusing a different optimization before
  any backtest runs), stores the run config it was given (a config file's, for
  ``foldwise resume``), then runs the equal-weight benchmark through the cache, keeps the
  fold definitions in the fold store and creates the fold studies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import joblib
import numpy as np
import optuna
import pandas as pd

from foldwise._hashing import hash_text
from foldwise.aggregate import Best, SelectRule, as_rule
from foldwise.backtest import BacktestSettings, Costs
from foldwise.cache import BacktestCache
from foldwise.data import MarketData
from foldwise.errors import OptimizationError, StrategyParameterError, StudyMismatchError
from foldwise.metrics import METRICS
from foldwise.records import (
    FOLD_ATTR,
    DataSummary,
    FoldWindow,
    StrategyIdentity,
    StudyManifest,
    read_manifest,
    read_run_config,
    write_manifest,
    write_run_config,
)
from foldwise.space import Categorical, Constraint, Fixed, Float, Int, SearchSpace
from foldwise.splits import BaseCombinatorialSplitter, BaseSplitter, FoldSet, FoldStore
from foldwise.storage import StorageSpec, parse_storage
from foldwise.strategy import Strategy, as_strategy

from ._benchmark import equal_weight_universe
from ._lookahead import check_lookahead
from ._objective import CV_AGGREGATES, TRAIN_END
from ._rebuild import DataCopies
from ._samplers import SamplerSpec

__all__ = ["MODES", "Plan", "Request", "fold_set_name", "fold_study_name", "make_plan",
           "store_plan", "validate"]

MODES = ("walk_forward", "cv")
Direction = Literal["maximize", "minimize"]


def fold_study_name(name: str, number: int) -> str:
    """Name of the study of fold ``number`` of optimization ``name``."""
    return f"{name}/fold-{number:02d}"


def fold_set_name(name: str) -> str:
    """Name of the optimization's fold set in the fold store (a valid file name).

    The study name itself when it is one; otherwise its characters outside ``A-Za-z0-9._-``
    replaced and a short hash of the full name added, so two studies never share a set.
    """
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", name):
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]", "-", name).lstrip("._-")[:150] or "study"
    return f"{slug}-{hash_text(name)[:8]}"


# --- validate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A checked call of :func:`foldwise.optimize` (see its docstring for each field)."""

    strategy: Strategy
    data: MarketData
    space: SearchSpace
    splitter: BaseSplitter | BaseCombinatorialSplitter
    metric: str
    direction: Direction
    n_trials: int
    study: str
    storage: StorageSpec
    mode: str
    top_k: int
    sampler: SamplerSpec
    pruner: optuna.pruners.BasePruner | None
    seed: int | None
    workers: int
    cache: BacktestCache
    settings: BacktestSettings
    cv_aggregate: str
    warmup: int | None
    timeout: float | None
    show_progress: bool
    check_lookahead: bool
    run_config: Mapping[str, Any] | None = None
    select: SelectRule = field(default_factory=Best)


def _positive_int(value: Any, name: str, fix: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise OptimizationError(f"{name} must be an integer >= 1, got {value!r}.{fix}")
    return int(value)


def _check_run_config(run_config: Any) -> dict[str, Any] | None:
    """``run_config`` as the JSON it is stored as (so a stored one compares equal)."""
    if run_config is None:
        return None
    if not isinstance(run_config, Mapping):
        raise OptimizationError(
            f"run_config must be None or a dict (the JSON of a config file), got "
            f"{type(run_config).__name__}.")
    try:
        stored: dict[str, Any] = json.loads(json.dumps(run_config, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise OptimizationError(
            f"run_config cannot be stored as JSON ({exc}); give strings, numbers, booleans, "
            "lists and dicts only.") from None
    return stored


def _resolve_direction(metric: Any, direction: str | None) -> Direction:
    if not isinstance(metric, str) or metric not in METRICS:
        import difflib

        close = difflib.get_close_matches(str(metric), list(METRICS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise OptimizationError(
            f"unknown metric {metric!r}.{hint} The metrics are: {', '.join(METRICS)}.")
    resolved = direction or METRICS[metric]
    if resolved == "maximize":
        return "maximize"
    if resolved == "minimize":
        return "minimize"
    raise OptimizationError(f"direction must be 'maximize' or 'minimize', got {direction!r}.")


def _check_splitter(splitter: Any) -> BaseSplitter | BaseCombinatorialSplitter:
    if isinstance(splitter, (BaseSplitter, BaseCombinatorialSplitter)):
        return splitter
    if splitter is None:
        raise OptimizationError(
            "splitter is None; pass a splitter of foldwise.splits, e.g. "
            "splitter=foldwise.WalkForward(train='2Y', test='6M').")
    kind = type(splitter).__name__
    hint = (" Its splits know nothing of purging, embargo or fold ids; use "
            "foldwise.WalkForward(train=..., test=...) (anchored=True for an expanding window) "
            "or foldwise.PurgedKFold(n_splits=...), which also work in scikit-learn."
            if hasattr(splitter, "split") else "")
    raise OptimizationError(
        f"splitter must be a splitter of foldwise.splits (WalkForward, PurgedKFold, "
        f"CombinatorialPurgedKFold), got {kind}.{hint}")


def _placeholder_params(space: SearchSpace) -> dict[str, Any]:
    """One value per parameter of a dict space, only to check names against the strategy."""
    values: dict[str, Any] = {}
    for name, spec in (space.params or {}).items():
        if isinstance(spec, (Int, Float)):
            values[name] = spec.low
        elif isinstance(spec, Categorical):
            values[name] = spec.choices[0]
        elif isinstance(spec, Fixed):
            values[name] = spec.value
    return values


def validate(
    strategy: Strategy | Callable[..., Any], data: Any,
    space: Mapping[str, Any] | Callable[[optuna.trial.BaseTrial], Mapping[str, Any]],
    splitter: Any, *, metric: str, direction: str | None, n_trials: Any, study: Any,
    storage: Any, mode: str, top_k: Any, sampler: SamplerSpec,
    pruner: optuna.pruners.BasePruner | None, seed: Any, n_jobs: Any, cache: Any,
    settings: BacktestSettings | None, costs: Costs | Mapping[str, float] | float | None,
    delay: int | None, price_field: str | None, missing: Any, periods_per_year: float | None,
    constraints: Constraint | Sequence[Constraint] | None, cv_aggregate: str,
    warmup: Any, timeout: Any, show_progress: bool, check_lookahead: bool,
    run_config: Any = None, select: Any = "best") -> Request:
    """Check every argument of :func:`foldwise.optimize`; see there for their meaning."""
    runner = as_strategy(strategy)
    if mode not in MODES:
        raise OptimizationError(f"mode must be one of {MODES}, got {mode!r}.")
    rule = as_rule(select)
    if mode == "cv" and not isinstance(rule, Best):
        raise OptimizationError(
            f"select={select!r} chooses a parameter set per fold, and mode='cv' runs one study "
            "whose objective already combines every fold; use select='best' with mode='cv', "
            "or mode='walk_forward'.")
    if not isinstance(data, MarketData):
        raise OptimizationError(
            f"data must be MarketData, got {type(data).__name__}; wrap a DataFrame with "
            "foldwise.MarketData.from_frame(df).")
    checked_splitter = _check_splitter(splitter)
    trials = _positive_int(n_trials, "n_trials")
    k = _positive_int(top_k, "top_k")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise OptimizationError(
            f"n_jobs must be an integer >= 1 (or -1: all cores), got {n_jobs!r}.")
    if cv_aggregate not in CV_AGGREGATES:
        raise OptimizationError(
            f"cv_aggregate must be one of {sorted(CV_AGGREGATES)}, got {cv_aggregate!r}.")
    if not isinstance(study, str) or not study or "/fold-" in study:
        raise OptimizationError(f"study must be a non-empty name without '/fold-', got {study!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise OptimizationError(
            f"seed must be None or an integer >= 0 (it seeds each fold's sampler), got "
            f"{seed!r}.")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, (int, float, np.number))
                                or not math.isfinite(timeout) or timeout <= 0):
        raise OptimizationError(
            f"timeout must be None or a number of seconds > 0, got {timeout!r}; use None to "
            "run every trial.")
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int)
                               or warmup < 0):
        raise OptimizationError(f"warmup must be None or an integer >= 0 (bars), got {warmup!r}.")
    resolved_direction = _resolve_direction(metric, direction)
    search = space if isinstance(space, SearchSpace) else SearchSpace(space, constraints)
    if TRAIN_END in (search.params or {}):
        raise StrategyParameterError(
            f"{TRAIN_END!r} is set by foldwise for per-fold strategies; remove it from the space.")
    if search.params is not None and (runner.causal or TRAIN_END not in runner.parameters):
        runner.validate_params(_placeholder_params(search))
    backtest_settings = BacktestSettings.coerce(
        settings, costs=costs, delay=delay, price_field=price_field, missing=missing,
        periods_per_year=periods_per_year)
    spec = parse_storage(storage)
    workers = joblib.cpu_count() if n_jobs == -1 else n_jobs
    opened_cache = cache if isinstance(cache, BacktestCache) else BacktestCache(cache)
    if workers > 1 and not spec.shareable:
        raise OptimizationError(
            f"n_jobs={n_jobs} needs a storage that several processes can open; {spec} lives "
            "in this process only. Use the default journal file (storage=None) or an RDB URL.")
    if workers > 1 and not opened_cache.shareable:
        raise OptimizationError(
            f"n_jobs={n_jobs} needs a cache that several processes can open; this cache's "
            "index lives in this process only. Use BacktestCache(directory) (a SQLite index) "
            "or n_jobs=1.")
    return Request(
        strategy=runner, data=data, space=search, splitter=checked_splitter, metric=metric,
        direction=resolved_direction, n_trials=trials, study=study, storage=spec, mode=mode,
        top_k=k, sampler=sampler, pruner=pruner, seed=None if seed is None else int(seed),
        workers=workers, cache=opened_cache, settings=backtest_settings,
        cv_aggregate=cv_aggregate, warmup=warmup,
        timeout=None if timeout is None else float(timeout), show_progress=show_progress,
        check_lookahead=bool(check_lookahead), run_config=_check_run_config(run_config),
        select=rule)


# --- plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What an optimization will run: its folds, its manifest, the names of its studies."""

    folds: FoldSet
    manifest: StudyManifest
    study_names: tuple[str, ...]  # the studies whose trials are evaluations


def import_path(strategy: Strategy) -> str | None:
    """``"module:qualname"`` of the strategy's code when it can be imported again, else None."""
    func = strategy.func
    target = type(strategy) if getattr(func, "__self__", None) is strategy else func
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def _iso(index: pd.DatetimeIndex, position: int) -> str:
    return index[position].isoformat()


def make_plan(request: Request) -> Plan:
    """Compute the folds (once) and the manifest of the optimization ``request`` asks for."""
    data = request.data
    folds = request.splitter.folds(data)
    index = data.index
    bounds = (request.splitter.group_bounds(data)
              if isinstance(request.splitter, BaseCombinatorialSplitter) else None)
    manifest = StudyManifest(
        mode=request.mode,
        data=DataSummary(data.content_hash, data.n_dates, data.n_assets, _iso(index, 0),
                         _iso(index, -1)),
        splitter={"repr": folds.splitter, "config": folds.config, "fold_set_id": folds.id},
        folds=tuple(FoldWindow(
            number=f.number, fold_id=f.fold_id,
            train=tuple((int(a), int(b)) for a, b in f.train_ranges),
            test=tuple((int(a), int(b)) for a, b in f.test_ranges),
            train_start=_iso(index, int(f.train[0])), train_end=_iso(index, int(f.train[-1])),
            test_start=_iso(index, int(f.test[0])), test_end=_iso(index, int(f.test[-1])),
            test_groups=tuple(int(g) for g in f.test_groups)) for f in folds),
        groups=None if bounds is None else tuple((int(a), int(b)) for a, b in bounds),
        strategy=StrategyIdentity(request.strategy.name, request.strategy.fingerprint,
                                  request.strategy.causal, import_path(request.strategy)),
        metric=request.metric, direction=request.direction, space=request.space.describe(),
        settings=request.settings, top_k=request.top_k, n_trials=request.n_trials,
        select=request.select.to_json(),
        cv_aggregate=request.cv_aggregate if request.mode == "cv" else None,
        warmup=None if request.strategy.causal else request.warmup)
    names = ((request.study,) if request.mode == "cv" else
             tuple(fold_study_name(request.study, f.number) for f in folds))
    return Plan(folds=folds, manifest=manifest, study_names=names)


def store_plan(request: Request, plan: Plan, storage: optuna.storages.BaseStorage) -> Plan:
    """Create or check the optimization's studies; returns the plan as stored.

    A new optimization stores its manifest; a resumed one must match the stored manifest
    (else :class:`~foldwise.errors.StudyMismatchError`, before any backtest runs). A causal
    strategy is checked for lookahead once (else :class:`~foldwise.errors.LookaheadError`,
    before anything is stored). Then the benchmark run is made (a cache hit after the first
    time), the fold definitions are kept in the fold store next to the cache, and one study
    per fold is created.
    """
    try:
        manifest_study: optuna.Study | None = optuna.load_study(study_name=request.study,
                                                                storage=storage)
    except KeyError:
        manifest_study = None
    stored = None if manifest_study is None else read_manifest(manifest_study)
    if stored is not None:
        changes = stored.differences(plan.manifest)
        if changes:
            name = request.study
            raise StudyMismatchError(
                f"study {name!r} was started with other settings, so resuming it would mix "
                f"results that do not belong together: {'; '.join(changes)}. Start a new "
                f"study with another name (e.g. study={name + '-v2'!r}), or delete the old "
                f"one with foldwise.delete_study({name!r}, storage=...) to start over under "
                "this name.")
    # The study keeps its own copy of the data, so its runs can be re-created from their
    # keys without the caller's objects (see foldwise.optimizer._rebuild).
    DataCopies(request.cache.root).keep(request.data)
    checked = stored is not None and stored.lookahead_checked
    if request.check_lookahead and request.strategy.causal and not checked:
        checked = check_lookahead(request)
    if manifest_study is None:
        try:
            manifest_study = optuna.create_study(study_name=request.study, storage=storage,
                                                 direction=request.direction)
        except optuna.exceptions.DuplicatedStudyError:
            # another process started this very study at the same moment: join it as a
            # resume (its manifest, if written by now, is compared with this one)
            return store_plan(request, plan, storage)
    # before the manifest: a study killed between the two writes still resumes from it
    if request.run_config is not None and read_run_config(manifest_study) != request.run_config:
        write_run_config(manifest_study, request.run_config)
    benchmark = request.cache.key(equal_weight_universe, {}, request.data,
                                  settings=request.settings)
    request.cache.get_or_run(equal_weight_universe, {}, request.data, settings=request.settings)
    manifest = replace(plan.manifest, benchmark=benchmark.digest, lookahead_checked=checked)
    # what the latest call says about reading the trials (select: the rule a fold's choice
    # is made by, applied after the trials, so a resumed study may change it)
    steering = ("top_k", "benchmark", "lookahead_checked", "n_trials", "select")
    if stored is None:
        write_manifest(manifest_study, manifest)
    elif any(getattr(stored, f) != getattr(manifest, f) for f in steering):
        # a resumed study whose read-back steering changed (not what identifies it)
        write_manifest(manifest_study, replace(stored, **{f: getattr(manifest, f)
                                                          for f in steering}))
    # The manifest is the authority: a new study replaces a stale fold set of the same name
    # (left by a study deleted from another storage); a resumed one must find its own.
    store = FoldStore(request.cache.root)
    set_name = fold_set_name(request.study)
    if stored is None:
        store.delete(set_name)
    store.folds(request.splitter, request.data, set_name, built=plan.folds)
    if request.mode == "walk_forward":
        for window, name in zip(manifest.folds, plan.study_names, strict=True):
            study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                        direction=request.direction)
            if FOLD_ATTR not in study.user_attrs:
                study.set_user_attr(FOLD_ATTR, {"number": window.number,
                                                "fold_id": window.fold_id,
                                                "study": request.study})
    return replace(plan, manifest=manifest)
