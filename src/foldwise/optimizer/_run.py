"""``optimize``: Optuna studies over walk-forward folds, through the cache, resumable, parallel.

How a call runs:

1. The inputs are checked before anything is stored: the strategy's parameters against the
   search space, the metric, the splitter against the data (``splitter.folds``, reused from
   the fold store under the study's name).
2. The manifest study records what identifies the optimization; resuming with other data,
   splitter, strategy code, metric, space or settings is refused (see ``_study``).
3. Workers run the trial loop (``_trials``) on each study until it holds ``n_trials``
   finished evaluations. ``n_jobs=1`` runs in this process, fold after fold, each fold's
   sampler seeded from ``seed``, so the run is reproducible. With ``n_jobs > 1`` joblib
   starts worker processes (the backend can be switched with
   ``joblib.parallel_config(backend=...)``, e.g. Dask on a cluster) and hands each a whole
   fold, with the seed it has in a sequential run: the result does not depend on
   ``n_jobs`` (see ``_parallel_tasks``).
4. Every evaluation goes through the :class:`~foldwise.BacktestCache` (``_evaluate``).
5. The result is read back from the storage by :func:`load_result`, exactly as a later
   ``load_result`` call would.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import joblib
import optuna

from foldwise._storage import StorageSpec, open_storage, parse_storage
from foldwise.backtest import Costs
from foldwise.data import MarketData
from foldwise.errors import OptimizationError, StrategyParameterError
from foldwise.examples import equal_weight
from foldwise.metrics import DEFAULT_PERIODS_PER_YEAR, METRICS
from foldwise.space import Constraint, SearchSpace
from foldwise.strategy import Strategy, as_strategy

from ._evaluate import TRAIN_END, Evaluator
from ._progress import Progress
from ._result import TEST_ATTR, WalkForwardResult, _trial_rows, read_result, select_top
from ._samplers import SamplerSpec, make_sampler, study_seed
from ._settings import RunSettings
from ._study import (
    FOLD_ATTR,
    check_metadata,
    fold_set_name,
    fold_study_name,
    manifest_metadata,
)
from ._trials import ERROR_ATTR, RESULT_ATTR, Outcome, budget_counts, run_trials

__all__ = ["optimize"]

logger = logging.getLogger(__name__)

_MODES = ("walk_forward", "cv")
_CV_AGGREGATES: dict[str, Callable[[list[float], str], float]] = {
    "mean": lambda values, direction: statistics.fmean(values),
    "median": lambda values, direction: statistics.median(values),
    "worst": lambda values, direction: min(values) if direction == "maximize" else max(values),
}


@dataclass
class _Job:
    """Everything a worker needs (sent to worker processes by joblib, never stored)."""

    name: str
    mode: str
    strategy: Strategy
    data: MarketData
    space: SearchSpace
    folds: Any
    settings: RunSettings
    storage: StorageSpec
    cache_root: str
    metric: str
    direction: str
    n_trials: int
    sampler: SamplerSpec
    pruner: optuna.pruners.BasePruner | None
    seed: int | None
    deadline: float | None  # epoch seconds
    warmup: int | None
    cv_aggregate: str
    worker: int = 0
    fold_numbers: tuple[int, ...] | None = None  # None: every fold, in order


def _suggest(trial: optuna.Trial, job: _Job) -> dict[str, Any]:
    """The trial's parameters, written to the storage before they are evaluated.

    A batching journal would keep them until the trial ends; written now, a trial whose
    worker dies (killed, out of memory) shows which set it was running, and samplers that
    read other workers' running trials (TPE's ``constant_liar``) see them.
    """
    params = job.space.suggest(trial)
    flush = getattr(trial.storage, "flush", None)
    if callable(flush):
        flush(trial._trial_id)
    return params


# --- evaluation of one trial ---------------------------------------------------------------


def _finite_or_error(value: float, metric: str, where: str) -> dict[str, Any] | None:
    if isinstance(value, float) and math.isfinite(value):
        return None
    return {"type": "NonFiniteMetric",
            "message": f"{metric} is {value} on {where} (for example a strategy that never "
                       "trades has no Sharpe ratio); the trial counts as failed",
            "traceback": ""}


def _evaluate_walk_forward(trial: optuna.Trial, job: _Job, evaluator: Evaluator,
                           fold: Any) -> Outcome:
    params = _suggest(trial, job)
    reason = job.space.infeasible(params)
    if reason is not None:
        return Outcome(infeasible=reason)
    evaluation = evaluator.evaluate(params, fold, test=evaluator.causal)
    value = evaluation.train[job.metric]
    attrs: dict[str, Any] = {RESULT_ATTR: evaluation.as_attr()}
    error = _finite_or_error(value, job.metric, f"the training window of fold {fold.number}")
    if error:
        attrs[ERROR_ATTR] = error
    return Outcome(value=value, attrs=attrs)


def _evaluate_cv(trial: optuna.Trial, job: _Job, evaluator: Evaluator) -> Outcome:
    params = _suggest(trial, job)
    reason = job.space.infeasible(params)
    if reason is not None:
        return Outcome(infeasible=reason)
    aggregate = _CV_AGGREGATES[job.cv_aggregate]
    values: list[float] = []
    per_fold: dict[str, dict[str, Any]] = {}

    def attrs() -> dict[str, Any]:
        return {RESULT_ATTR: {"folds": {k: v["test"] for k, v in per_fold.items()},
                              "evaluations": per_fold}}

    for fold in job.folds:
        evaluation = evaluator.evaluate(params, fold, train=False)
        per_fold[str(fold.number)] = evaluation.as_attr()
        value = evaluation.test[job.metric]
        error = _finite_or_error(value, job.metric, f"the test window of fold {fold.number}")
        if error:
            return Outcome(value=math.nan, attrs={**attrs(), ERROR_ATTR: error})
        values.append(value)
        trial.report(aggregate(values, job.direction), step=fold.number)
        if trial.should_prune():
            return Outcome(pruned=True, attrs=attrs())
    return Outcome(value=aggregate(values, job.direction), attrs=attrs())


# --- a worker ------------------------------------------------------------------------------


# Storages and caches opened by this process, reused by the next task it runs: a worker
# process (joblib keeps them between tasks) then syncs the journal incrementally instead
# of replaying it whole for every fold.
_opened: dict[tuple[int, str, str], tuple[Any, Any]] = {}


def _open_resources(job: _Job) -> tuple[Any, Any]:
    from foldwise.cache import BacktestCache

    key = (os.getpid(), str(job.storage), job.cache_root)
    if job.storage.storage is not None:  # an object (the caller's, or "memory"): as given
        return open_storage(job.storage), BacktestCache(job.cache_root)
    if key not in _opened:
        _opened.clear()  # one optimization at a time per process
        _opened[key] = (open_storage(job.storage), BacktestCache(job.cache_root))
    return _opened[key]


def _work(job: _Job, on_finished: Callable[[], None] | None = None) -> str:
    """Run the trial loop of every study of the job; returns "done" or "timeout"."""
    storage, cache = _open_resources(job)
    evaluator = Evaluator(job.strategy, job.data, cache, job.settings, job.warmup)
    deadline = None if job.deadline is None else time.monotonic() + (job.deadline - time.time())
    try:
        return _run_studies(job, storage, evaluator, deadline, on_finished)
    finally:
        cache.flush()


def _run_studies(job: _Job, storage: Any, evaluator: Evaluator, deadline: float | None,
                 on_finished: Callable[[], None] | None) -> str:
    if job.mode == "cv":
        study = optuna.load_study(
            study_name=job.name, storage=storage, pruner=job.pruner,
            sampler=make_sampler(job.sampler, study_seed(job.seed, 0, job.worker)))
        return run_trials(study, job.n_trials,
                          partial(_evaluate_cv, job=job, evaluator=evaluator),
                          label=f"study {job.name!r}", deadline=deadline,
                          on_finished=on_finished)
    numbers = job.fold_numbers if job.fold_numbers is not None else range(len(job.folds))
    for number in numbers:
        fold = job.folds[number]
        study = optuna.load_study(
            study_name=fold_study_name(job.name, fold.number), storage=storage,
            pruner=job.pruner,
            sampler=make_sampler(job.sampler, study_seed(job.seed, fold.number, job.worker)))
        status = run_trials(study, job.n_trials,
                            partial(_evaluate_walk_forward, job=job, evaluator=evaluator,
                                    fold=fold),
                            label=f"fold {fold.number}", deadline=deadline,
                            on_finished=on_finished)
        if status == "timeout":
            return status
    return "done"


def _parallel_tasks(job: _Job, workers: int) -> list[_Job]:
    """Split the work between ``workers`` processes.

    Walk-forward: one task per fold, each fold run whole by one worker with the sampler
    seed it has in a sequential run — so the result is the same for any ``n_jobs``. Only
    when there are more workers than folds do the extra ones join folds (trial-level
    parallelism, not reproducible). Cross-validated: every worker runs trials of the one
    study.
    """
    if job.mode == "cv":
        return [replace(job, worker=w) for w in range(workers)]
    n_folds = len(job.folds)
    tasks = [replace(job, fold_numbers=(number,)) for number in range(n_folds)]
    for extra in range(max(0, workers - n_folds)):
        tasks.append(replace(job, fold_numbers=(extra % n_folds,),
                             worker=1 + extra // n_folds))
    return tasks


# --- helpers of optimize -------------------------------------------------------------------


def _check_space_against_strategy(space: SearchSpace, strategy: Strategy) -> None:
    """Refuse a dict space naming a parameter the strategy does not have (with the fix)."""
    if space.params is not None:
        strategy.validate_params(_placeholder_params(space))


def _placeholder_params(space: SearchSpace) -> dict[str, Any]:
    """One value per parameter of a dict space, only to check names against the strategy."""
    from foldwise.space import Categorical, Fixed, Float, Int

    values: dict[str, Any] = {}
    assert space.params is not None
    for name, spec in space.params.items():
        if isinstance(spec, (Int, Float)):
            values[name] = spec.low
        elif isinstance(spec, Categorical):
            values[name] = spec.choices[0]
        elif isinstance(spec, Fixed):
            values[name] = spec.value
    return values


def _resolve_metric(metric: str, direction: str | None) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        import difflib

        close = difflib.get_close_matches(str(metric), list(METRICS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise OptimizationError(
            f"unknown metric {metric!r}.{hint} The metrics are: {', '.join(METRICS)}.")
    resolved = direction or METRICS[metric]
    if resolved not in ("maximize", "minimize"):
        raise OptimizationError(f"direction must be 'maximize' or 'minimize', got {direction!r}.")
    return resolved


def _count_finished(storage: Any, names: Sequence[str]) -> int:
    """Finished evaluations (the budget used) over the studies ``names`` of ``storage``."""
    total = 0
    for name in names:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            continue
        total += budget_counts(study.get_trials(deepcopy=False)).finished
    return total


def _store_per_fold_tests(job: _Job, storage: Any, evaluator: Evaluator, top_k: int) -> None:
    """Per-fold strategies: evaluate the selected sets on the test window, once, and store."""
    for fold in job.folds:
        study = optuna.load_study(study_name=fold_study_name(job.name, fold.number),
                                  storage=storage)
        stored = dict(study.user_attrs.get(TEST_ATTR, {}))
        rows = select_top(_trial_rows(study.get_trials(deepcopy=False), fold.number),
                          job.direction, top_k)
        missing = [row for row in rows if str(row["trial"]) not in stored]
        for row in missing:
            stored[str(row["trial"])] = evaluator.evaluate(row["params"], fold,
                                                           train=False).as_attr()
        if missing:
            study.set_user_attr(TEST_ATTR, stored)


# --- the public function -------------------------------------------------------------------


def optimize(
    strategy: Strategy | Callable[..., Any],
    data: MarketData,
    space: Mapping[str, Any] | Callable[[optuna.trial.BaseTrial], Mapping[str, Any]],
    splitter: Any,
    *,
    metric: str = "sharpe",
    direction: str | None = None,
    n_trials: int = 100,
    study: str = "foldwise",
    storage: Any = None,
    mode: str = "walk_forward",
    top_k: int = 5,
    sampler: SamplerSpec = None,
    pruner: optuna.pruners.BasePruner | None = None,
    seed: int | None = None,
    n_jobs: int = 1,
    cache: Any = None,
    costs: Costs | Mapping[str, float] | float | None = None,
    delay: int = 0,
    price_field: str = "close",
    missing: str = "zero",
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
    constraints: Constraint | Sequence[Constraint] | None = None,
    cv_aggregate: str = "mean",
    warmup: int | None = None,
    timeout: float | None = None,
    show_progress: bool = True,
) -> WalkForwardResult:
    """Optimize a strategy's parameters over walk-forward folds with Optuna.

    Walk-forward mode (default) runs one Optuna study per fold, optimizing ``metric`` on
    the fold's training window only; the best parameter set and the next ``top_k - 1``
    distinct ones are judged on the fold's test window, which the optimization never saw.
    Cross-validated mode (``mode="cv"``) runs one study whose objective aggregates the
    metric over the folds' test windows, reporting after each fold so that a ``pruner``
    can stop hopeless sets early.

    Every backtest goes through the cache: a parameter set already run on the same data
    (in this study, another fold, an earlier run or another study) costs a lookup. The
    studies live in ``storage``; calling ``optimize`` again with the same ``study``
    continues where it stopped, after a crash too.

    Parameters
    ----------
    strategy
        A :class:`~foldwise.Strategy` or a function ``(data, **params) -> weights``. A
        causal strategy (the default) is backtested once per parameter set over the whole
        history and each fold's metrics are slices of it; a ``causal=False`` strategy is
        run per fold (see ``warmup``).
    data
        The market data.
    space
        A dict of parameter specs (:mod:`foldwise.space`: ``Int``, ``Float``,
        ``Categorical``, fixed values, or shortcuts like ``(5, 50)``) or an Optuna
        define-by-run function ``(trial) -> params``.
    splitter
        A splitter of :mod:`foldwise.splits` (``WalkForward``, ``PurgedKFold``,
        ``CombinatorialPurgedKFold``).
    metric
        The metric to optimize, one of :data:`foldwise.metrics.METRICS`.
    direction
        ``"maximize"`` or ``"minimize"``; default: the metric's natural direction.
    n_trials
        Finished evaluations per study (per fold in walk-forward mode) — a total, not per
        call: a resumed study only runs what is missing. Infeasible parameter sets (see
        ``constraints``) do not count.
    study
        Name of the optimization; fold studies are named ``"<study>/fold-00"``, ...
    storage
        Optuna storage: None for the journal file ``./.foldwise/studies.journal``
        (``$FOLDWISE_DIR`` moves it), an Optuna URL (``sqlite:///...``,
        ``postgresql://...``), ``"journal:<path>"``, ``"memory"``, or a storage object.
    mode
        ``"walk_forward"`` or ``"cv"``.
    top_k
        How many distinct parameter sets per fold are evaluated out of sample.
    sampler
        None (TPE), a sampler name (``"tpe"``, ``"random"``, ``"qmc"``, ``"cmaes"``, ``"gp"``,
        ``"nsga2"``), an Optuna sampler object, or a function ``seed -> sampler``.
    pruner
        An Optuna pruner (cross-validated mode reports after every fold).
    seed
        Seeds the samplers (each fold its own stream): sequential runs are reproducible.
    n_jobs
        Worker processes (joblib). They share the storage and the cache.
    cache
        A :class:`~foldwise.BacktestCache` or its directory; None: the default
        (``./.foldwise/cache``).
    costs, delay, price_field, missing, periods_per_year
        Backtest settings (see :func:`foldwise.backtest`). ``delay`` postpones execution;
        a positive delay is a cheap check that results do not depend on trading at the
        very close the signal was computed on.
    constraints
        ``"fast < slow"``-style strings or functions ``params -> bool``; an infeasible set
        is never backtested and does not use the budget.
    cv_aggregate
        Cross-validated mode: ``"mean"``, ``"median"`` or ``"worst"`` of the fold metrics.
    warmup
        ``causal=False`` strategies: bars of history before each training window given to
        the strategy (None: all of it). A strategy that takes a ``train_end`` argument gets
        the last training date, to fit on data through it only.
    timeout
        Seconds after which no new trial starts; the result holds what finished.
    show_progress
        Show a progress bar (tqdm) over the trials.

    Returns
    -------
    WalkForwardResult

    Raises
    ------
    StudyMismatchError
        Resuming ``study`` with other data, splitter, strategy code, metric, space or
        settings.
    AllTrialsFailedError
        Every trial of a study failed (the message names the first reason).
    """
    runner = as_strategy(strategy)
    if mode not in _MODES:
        raise OptimizationError(f"mode must be one of {_MODES}, got {mode!r}.")
    if not isinstance(data, MarketData):
        raise OptimizationError(
            f"data must be MarketData, got {type(data).__name__}; wrap a DataFrame with "
            "foldwise.MarketData.from_frame(df).")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise OptimizationError(f"n_trials must be an integer >= 1, got {n_trials!r}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise OptimizationError(f"top_k must be an integer >= 1, got {top_k!r}.")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise OptimizationError(f"n_jobs must be an integer >= 1 (or -1: all cores), got {n_jobs!r}.")
    if cv_aggregate not in _CV_AGGREGATES:
        raise OptimizationError(
            f"cv_aggregate must be one of {sorted(_CV_AGGREGATES)}, got {cv_aggregate!r}.")
    if not isinstance(study, str) or not study or "/fold-" in study:
        raise OptimizationError(f"study must be a non-empty name without '/fold-', got {study!r}.")
    resolved_direction = _resolve_metric(metric, direction)
    search = space if isinstance(space, SearchSpace) else SearchSpace(space, constraints)
    if TRAIN_END in (search.params or {}):
        raise StrategyParameterError(
            f"{TRAIN_END!r} is set by foldwise for per-fold strategies; remove it from the space.")
    if runner.causal or TRAIN_END not in runner.parameters:
        _check_space_against_strategy(search, runner)
    settings = RunSettings.build(costs, delay, price_field, missing, periods_per_year)

    from foldwise.cache import BacktestCache
    from foldwise.splits import FoldStore

    if cache is None or not isinstance(cache, BacktestCache):
        cache = BacktestCache(cache)
    spec = parse_storage(storage)
    workers = joblib.cpu_count() if n_jobs == -1 else n_jobs
    if workers > 1 and not spec.shareable:
        raise OptimizationError(
            f"n_jobs={n_jobs} needs a storage that several processes can open; {spec} lives "
            "in this process only. Use the default journal file (storage=None) or an RDB URL.")
    folds = splitter.folds(data)

    opened = open_storage(spec)
    manifest = optuna.create_study(study_name=study, storage=opened, load_if_exists=True,
                                   direction=resolved_direction)
    bounds = getattr(splitter, "group_bounds", None)
    metadata = manifest_metadata(
        mode=mode, data=data, folds=folds, strategy=runner, metric=metric,
        direction=resolved_direction, space=search, settings=settings, top_k=top_k,
        cv_aggregate=cv_aggregate if mode == "cv" else None, warmup=warmup,
        groups=bounds(data).tolist() if callable(bounds) else None)
    # The equal-weight universe over the same data and settings: the comparison line of
    # the result, stored in the cache like any run and named in the metadata.
    cache.get_or_run(equal_weight, {}, data, **settings.as_kwargs())
    metadata["benchmark"] = cache.key(equal_weight, {}, data, **settings.as_kwargs()).digest
    resumed = check_metadata(manifest, metadata)
    # The study is accepted: keep its fold definitions in the fold store next to the cache.
    # The manifest is the authority: a new study replaces a stale set of the same name
    # (left by a study deleted from another storage); a resumed one must find its own.
    store, set_name = FoldStore(cache.root), fold_set_name(study)
    if not resumed:
        store.delete(set_name)
    splitter.folds(data, store=store, name=set_name)
    if mode == "walk_forward":
        names = [fold_study_name(study, f.number) for f in folds]
        for fold, name in zip(folds, names, strict=True):
            created = optuna.create_study(study_name=name, storage=opened, load_if_exists=True,
                                          direction=resolved_direction)
            if FOLD_ATTR not in created.user_attrs:
                created.set_user_attr(FOLD_ATTR, {"number": fold.number,
                                                        "fold_id": fold.fold_id,
                                                        "study": study})
    else:
        names = [study]
    total = n_trials * len(names)
    done = _count_finished(opened, names)
    logger.info("%s study %r: %d folds, %d of %d trials already finished",
                "resuming" if resumed else "starting", study, len(folds), done, total)

    job = _Job(name=study, mode=mode, strategy=runner, data=data, space=search, folds=folds,
               settings=settings, storage=spec, cache_root=str(cache.root), metric=metric,
               direction=resolved_direction, n_trials=n_trials, sampler=sampler, pruner=pruner,
               seed=seed, deadline=None if timeout is None else time.time() + timeout,
               warmup=warmup, cv_aggregate=cv_aggregate)
    progress = Progress(total, done, f"{study}", show_progress)
    try:
        if workers == 1:
            status = _work(job, on_finished=progress.advance)
        else:
            progress.follow(lambda: _count_finished(opened, names))
            tasks = _parallel_tasks(job, workers)
            statuses = joblib.Parallel(n_jobs=workers)(joblib.delayed(_work)(t) for t in tasks)
            status = "timeout" if "timeout" in statuses else "done"
    finally:
        progress.close(_count_finished(opened, names))
    if status == "timeout":
        logger.warning("study %r stopped at its timeout of %s s; call optimize again with the "
                       "same study to finish it", study, timeout)
    if mode == "walk_forward" and not runner.causal:
        _store_per_fold_tests(job, opened, Evaluator(runner, data, cache, settings, warmup),
                              top_k)
    return read_result(study, spec, opened, cache)

