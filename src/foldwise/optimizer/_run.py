"""``optimize``: validate -> plan -> run -> read.

1. **Validate** (:func:`~foldwise.optimizer._plan.validate`): every argument is checked
   before anything is opened; the result is a typed ``Request``.
2. **Plan** (:func:`~foldwise.optimizer._plan.make_plan`, ``store_plan``): the folds are
   computed once, the manifest built and stored — or compared with the stored one, refusing
   a different optimization before any backtest runs. The storage is opened once here and
   the caller's cache object is the one every step uses.
3. **Run** (:func:`_run`): workers run the trial loop (``_trials``) on each study until it
   holds ``n_trials`` finished evaluations; every evaluation goes through the cache
   (``_objective``). ``n_jobs=1`` runs in this process, fold after fold, each fold's sampler
   seeded from ``seed``. With ``n_jobs > 1`` joblib hands each worker process a whole fold
   with the seed it has in a sequential run, so the result does not depend on ``n_jobs``;
   the cache object and the storage spec travel to the workers (the backend can be switched
   with ``joblib.parallel_config(backend=...)``, e.g. Dask on a cluster). A worker process
   that is a child of the caller exits when the caller dies (:mod:`._orphans`).
4. **Read** (:func:`~foldwise.optimizer._studies.read_study`): the result is read back from
   the storage already open, exactly as a later :func:`load_result` would.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import joblib
import optuna

from foldwise._canonical import canonical_json
from foldwise._optuna_logging import optuna_quiet
from foldwise.aggregate import SelectRule, TopKMean, WalkForwardResult, choose
from foldwise.backtest import BacktestSettings, Costs, MissingPolicy
from foldwise.cache import BacktestCache
from foldwise.errors import raised_by_strategy
from foldwise.records import (
    Evaluation,
    SelectionRecord,
    StoredTrial,
    read_fold_tests,
    read_selection,
    read_trial,
    write_fold_tests,
    write_selection,
)
from foldwise.space import Constraint
from foldwise.splits import Fold
from foldwise.storage import StorageSpec, current_worker, focus_replay, open_storage
from foldwise.strategy import Strategy

from ._faults import stopping_on_machine_faults
from ._objective import Evaluator, evaluate_cv, evaluate_walk_forward, trial_metrics
from ._orphans import stop_with_caller
from ._plan import Plan, Request, make_plan, store_plan, validate
from ._progress import Progress
from ._rebuild import study_runs
from ._samplers import (
    SamplerSpec,
    builds_vectorized_tpe,
    make_sampler,
    reseed,
    study_seed,
    trial_seed,
)
from ._studies import pin_owner, read_study_keeping_snapshot, result_of
from ._tpe import planned_trials
from ._trials import budget_counts, run_trials

__all__ = ["optimize"]

logger = logging.getLogger(__name__)


# --- run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """What one worker runs: studies of the plan (sent to worker processes by joblib)."""

    request: Request
    plan: Plan
    deadline: float | None  # epoch seconds
    worker: int = 0
    fold_numbers: tuple[int, ...] | None = None  # None: every fold, in order
    # the process that called optimize: a worker process exits when it dies (_orphans)
    caller: dict[str, Any] | None = field(default=None, compare=False)


# Storages opened by this process, reused by the next task it runs: a worker process
# (joblib keeps them between tasks) then syncs the journal incrementally instead of
# replaying it whole for every fold.
_opened: dict[tuple[int, str], optuna.storages.BaseStorage] = {}


def _worker_storage(spec: StorageSpec) -> optuna.storages.BaseStorage:
    if spec.storage is not None:  # an object (the caller's, or "memory"): as given
        return open_storage(spec)
    key = (os.getpid(), str(spec))
    if key not in _opened:
        _opened.clear()  # one optimization at a time per process
        _opened[key] = open_storage(spec)
    return _opened[key]


def _work(task: _Task, storage: optuna.storages.BaseStorage | None = None,
          on_finished: Callable[[], None] | None = None) -> str:
    """Run the trial loop of every study of ``task``; returns "done" or "timeout"."""
    if task.caller is not None:
        stop_with_caller(task.caller)
    with optuna_quiet(), warnings.catch_warnings():
        # Optuna warns on every ask of a storage with heartbeats outside Study.optimize;
        # the trial loop records the heartbeats itself
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be",
                                category=UserWarning)
        return _work_quietly(task, storage, on_finished)


def _work_quietly(task: _Task, storage: optuna.storages.BaseStorage | None,
                  on_finished: Callable[[], None] | None) -> str:
    request = task.request
    opened = storage if storage is not None else _worker_storage(request.storage)
    evaluator = Evaluator(request.strategy, request.data, request.cache, request.settings,
                          request.warmup, names=trial_metrics(request.metric),
                          folds=task.plan.folds)
    deadline = (None if task.deadline is None
                else time.monotonic() + (task.deadline - time.time()))
    numbers = task.fold_numbers if task.fold_numbers is not None else task.plan.folds
    planned = request.n_trials * (1 if request.mode == "cv" else len(numbers))
    try:
        with planned_trials(planned if builds_vectorized_tpe(request.sampler) else 0):
            return _run_studies(task, opened, evaluator, deadline, on_finished)
    finally:
        request.cache.flush()


def _run_studies(task: _Task, storage: optuna.storages.BaseStorage, evaluator: Evaluator,
                 deadline: float | None, on_finished: Callable[[], None] | None) -> str:
    request, plan = task.request, task.plan
    if request.mode == "cv":
        study = optuna.load_study(
            study_name=request.study, storage=storage, pruner=request.pruner,
            sampler=make_sampler(request.sampler, study_seed(request.seed, 0, task.worker)))
        sampler_for = _sampler_for(request, 0, task.worker)
        objective = partial(evaluate_cv, space=request.space, evaluator=evaluator,
                            folds=list(plan.folds), metric=request.metric,
                            direction=request.direction, aggregate=request.cv_aggregate)
        return run_trials(study, request.n_trials, objective, label=f"study {request.study!r}",
                          deadline=deadline, on_finished=on_finished, sampler_for=sampler_for)
    numbers = task.fold_numbers if task.fold_numbers is not None else range(len(plan.folds))
    for number in numbers:
        fold = plan.folds[number]
        study = optuna.load_study(
            study_name=plan.study_names[number], storage=storage, pruner=request.pruner,
            sampler=make_sampler(request.sampler,
                                 study_seed(request.seed, fold.number, task.worker)))
        focus_replay(study)  # of the other folds' finished trials, what the replay needs
        objective = partial(evaluate_walk_forward, space=request.space, evaluator=evaluator,
                            fold=fold, metric=request.metric)
        status = run_trials(study, request.n_trials, objective, label=f"fold {fold.number}",
                            deadline=deadline, on_finished=on_finished,
                            sampler_for=_sampler_for(request, fold.number, task.worker))
        if status == "timeout":
            return status
    return "done"


def _sampler_for(request: Request, number: int, worker: int
                 ) -> Callable[[int], optuna.samplers.BaseSampler] | None:
    """With a seed, a new sampler per trial seeded from the seed, the study and the trial's
    place in it (exact resume, see ``run_trials``). A sampler object is used as given: its
    state cannot be re-seeded, so such a study resumes correctly but not exactly."""
    base = study_seed(request.seed, number, worker)
    if base is None or isinstance(request.sampler, optuna.samplers.BaseSampler):
        return None
    current: list[optuna.samplers.BaseSampler] = []

    def sampler_for(settled: int) -> optuna.samplers.BaseSampler:
        seed = trial_seed(base, settled)
        if not current or not reseed(current[0], request.sampler, seed):
            current[:] = [make_sampler(request.sampler, seed)]
        return current[0]

    return sampler_for


def _parallel_tasks(task: _Task, workers: int) -> list[_Task]:
    """Split the work between ``workers`` processes.

    Walk-forward: one task per fold, each fold run whole by one worker with the sampler
    seed it has in a sequential run — so the result is the same for any ``n_jobs``. Only
    when there are more workers than folds do the extra ones join folds (trial-level
    parallelism, not reproducible). Cross-validated: every worker runs trials of the one
    study.
    """
    if task.request.mode == "cv":
        return [replace(task, worker=w) for w in range(workers)]
    n_folds = len(task.plan.folds)
    tasks = [replace(task, fold_numbers=(number,)) for number in range(n_folds)]
    for extra in range(max(0, workers - n_folds)):
        tasks.append(replace(task, fold_numbers=(extra % n_folds,),
                             worker=1 + extra // n_folds))
    return tasks


def _count_finished(storage: optuna.storages.BaseStorage, names: Sequence[str]) -> int:
    """Finished evaluations (the budget used) over the studies ``names`` of ``storage``."""
    return sum(budget_counts(optuna.load_study(study_name=name, storage=storage)
                             .get_trials(deepcopy=False)).finished for name in names)


def _run(request: Request, plan: Plan, storage: optuna.storages.BaseStorage) -> None:
    """Run every study of ``plan`` to its budget (or to the timeout)."""
    names = plan.study_names
    total = request.n_trials * len(names)
    done = _count_finished(storage, names)
    logger.info("study %r: %d folds, %d of %d trials already finished", request.study,
                len(plan.folds), done, total)
    task = _Task(request, plan,
                 deadline=None if request.timeout is None else time.time() + request.timeout,
                 caller=current_worker())
    progress = Progress(total, done, request.study, request.show_progress)
    try:
        if request.workers == 1:
            status = _work(task, storage, on_finished=progress.advance)
        else:
            progress.follow(lambda: _count_finished(storage, names))
            tasks = _parallel_tasks(task, request.workers)
            statuses = joblib.Parallel(n_jobs=request.workers)(
                joblib.delayed(_work)(t) for t in tasks)
            status = "timeout" if "timeout" in statuses else "done"
    finally:
        progress.close(_count_finished(storage, names))
    if status == "timeout":
        logger.warning("study %r stopped at its timeout of %s s; call optimize again with the "
                       "same study to finish it", request.study, request.timeout)
    if request.mode == "walk_forward" and (not request.strategy.causal
                                           or isinstance(request.select, TopKMean)):
        _store_per_fold_tests(request, plan, storage)


def _store_per_fold_tests(request: Request, plan: Plan,
                          storage: optuna.storages.BaseStorage) -> None:
    """After the trials, evaluate what each fold's selection needs, once (through the cache).

    Per-fold strategies: the sets the selection rule judges out of sample on the fold's test
    window (their trials evaluated the training window only). ``"top_k_mean"``: the average
    of the fold's best sets on both windows, stored as the fold's
    :class:`~foldwise.records.SelectionRecord` (again only when the average changed, e.g.
    after more trials).
    """
    evaluator = Evaluator(request.strategy, request.data, request.cache, request.settings,
                          request.warmup)
    space = plan.manifest.space
    for fold, name in zip(plan.folds, plan.study_names, strict=True):
        study = optuna.load_study(study_name=name, storage=storage)
        trials = [read_trial(t, fold.number) for t in study.get_trials(deepcopy=False)]
        choice = choose(trials, request.direction, request.top_k, request.select, space)
        if not request.strategy.causal:
            stored: dict[int, Evaluation] = read_fold_tests(study)
            missing = [t for t in choice.ranked if t.number not in stored]
            for trial in missing:
                stored[trial.number] = evaluator.evaluate(trial.params, fold, train=False)
            if missing:
                write_fold_tests(study, stored)
        if choice.average is not None:
            before = read_selection(study)
            if before is None or canonical_json(before.params) != canonical_json(choice.average):
                write_selection(study, _evaluate_selection(
                    request, evaluator, fold, choice.average, choice.averaged))
    request.cache.flush()


def _evaluate_selection(request: Request, evaluator: Evaluator, fold: Fold,
                        params: Mapping[str, Any], sources: Sequence[StoredTrial],
                        ) -> SelectionRecord:
    """A set a selection rule made up, evaluated on ``fold``'s two windows — or why not.

    A set that violates a constraint is not run; a strategy that raises on it, or a
    training metric that is not finite, is recorded as the reason the set cannot be the
    fold's choice (the best set then stands in). Any other exception (a fault of the
    machine) propagates: nothing is stored and the next run evaluates the set again.
    """
    rule: SelectRule = request.select
    made = partial(SelectionRecord, rule.to_json(), dict(params),
                   tuple(t.number for t in sources))
    infeasible = request.space.infeasible(params)
    if infeasible is not None:
        logger.warning("fold %d: the %s set %s %s; the best set stands in", fold.number,
                       rule.name, dict(params), infeasible)
        return made(failure=infeasible)
    try:
        evaluation = evaluator.evaluate(params, fold)
    except Exception as exc:
        if not raised_by_strategy(exc):
            raise
        logger.warning("fold %d: the strategy raised on the %s set %s (%s: %s); the best set "
                       "stands in", fold.number, rule.name, dict(params),
                       type(exc).__name__, exc)
        return made(failure=f"the strategy raised {type(exc).__name__}: {exc}")
    value = (evaluation.train or {}).get(request.metric, math.nan)
    failure = (None if math.isfinite(value) else
               f"its in-sample {request.metric} is {value} (not finite)")
    return made(evaluation=evaluation, failure=failure)


# --- the public function -------------------------------------------------------------------

#: ``optimize(keep_statistics=None)`` keeps the report's statistics after a call this long
#: (seconds). They cost about 1 ms per distinct parameter set plus a backtest of each set
#: whose returns the cache did not keep: a few percent of a call this long or longer.
KEEP_STATISTICS_AFTER = 30.0


def optimize(
    strategy: Strategy | Callable[..., Any],
    data: Any,
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
    select: str | SelectRule = "best",
    sampler: SamplerSpec = None,
    pruner: optuna.pruners.BasePruner | None = None,
    seed: int | None = None,
    n_jobs: int = 1,
    cache: BacktestCache | str | os.PathLike[str] | None = None,
    settings: BacktestSettings | None = None,
    costs: Costs | Mapping[str, float] | float | None = None,
    delay: int | None = None,
    price_field: str | None = None,
    missing: MissingPolicy | None = None,
    periods_per_year: float | None = None,
    constraints: Constraint | Sequence[Constraint] | None = None,
    cv_aggregate: str = "mean",
    warmup: int | None = None,
    timeout: float | None = None,
    show_progress: bool = True,
    check_lookahead: bool = True,
    run_config: Mapping[str, Any] | None = None,
    keep_statistics: bool | None = None,
) -> WalkForwardResult:
    """Optimize a strategy's parameters over walk-forward folds with Optuna.

    Walk-forward mode (default) runs one Optuna study per fold, optimizing ``metric`` on
    the fold's training window only; the parameter set the ``select`` rule chooses (by
    default the best) and the next ``top_k - 1`` distinct ones are judged on the fold's test
    window, which the optimization never saw.
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
        The market data (:class:`~foldwise.MarketData`).
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
    select
        How each fold chooses the parameter set it trades out of sample (walk-forward
        mode), applied to the fold's trials after they ran:

        * ``"best"`` (default): the best in-sample value — the sharpest peak of the
          in-sample surface, and the most fragile choice.
        * ``"plateau"`` (or :class:`foldwise.Plateau` ``(radius=0.1, prior=1.0)``): the
          evaluated set whose in-sample value averaged over its neighbourhood in parameter
          space is best. Numeric parameters are near when they are within ``radius`` of
          their range (log units for log-scaled ones, at least two grid steps), categorical
          ones only when equal; the average weights each neighbour by ``1 - (d/radius)**2``,
          counts the set itself and the fold's median value (``prior``), so a lone spike
          does not win by itself. Ties go to the earlier trial. The ``top_k`` sets judged
          out of sample are the best by this smoothed value.
        * ``"top_k_mean"`` (or :class:`foldwise.TopKMean` ``(k=None)``): the average of the
          ``k`` best sets' parameters (``k`` defaults to ``top_k``): numeric ones averaged
          (geometrically when log-scaled), rounded to their grid and clipped to their range;
          categorical ones the most frequent value, ties to the better set. The average is
          evaluated on the fold's training and test windows after the trials (through the
          cache) and becomes the fold's choice, judged next to the ``top_k`` best sets; one
          that violates a constraint or that the strategy fails on is recorded and the best
          set stands in (the fold table's ``select_note`` says why).

        The rule is stored with the study, so :func:`load_result` and ``foldwise show``
        choose as the run did (a study stored before rules existed reads as ``"best"``).
        It does not identify the optimization: resuming with another ``select`` is allowed
        and the stored rule is replaced (no trial runs again; a ``"top_k_mean"`` average is
        evaluated if it is new). Cross-validated mode takes ``"best"`` only.
    sampler
        None (TPE), a sampler name (``"tpe"``, ``"random"``, ``"qmc"``, ``"cmaes"``, ``"gp"``,
        ``"nsga2"``), an Optuna sampler object, or a function ``seed -> sampler``.
    pruner
        An Optuna pruner (cross-validated mode reports after every fold).
    seed
        Seeds the samplers (each fold its own stream): sequential runs are reproducible.
    n_jobs
        Worker processes (joblib; -1: all cores). They share the storage and the cache,
        which must then be ones several processes can open.
    cache
        A :class:`~foldwise.BacktestCache` (used as given, in every worker) or its
        directory; None: the default (``./.foldwise/cache``).
    settings
        A :class:`~foldwise.BacktestSettings`; the keywords below replace its fields.
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
    check_lookahead
        Before the first fold of a new study, check once that a causal strategy's weights
        do not use later data (:func:`foldwise.check_causal` at a few cut-offs, on the first
        feasible parameter set, its baseline run through the cache); refused with
        :class:`~foldwise.errors.LookaheadError` naming the date and asset. ``False`` skips
        the check, and the study records that it was not checked.
    run_config
        A JSON-able description of how this optimization was asked for, stored with the
        study (:func:`foldwise.records.write_run_config`) before its first trial and
        replaced when given again; None leaves what is stored. ``foldwise run`` stores its
        parsed config file here, which is what lets ``foldwise resume`` run the study
        again without the file.
    keep_statistics
        Compute at the end the statistics every report shows (PBO, PSR, DSR and the data
        snooping section, :meth:`WalkForwardResult.keep_report_statistics`) and keep them
        with the study, so that the first ``foldwise show`` or report reads them instead
        of computing them. None (default): only when the call ran at least
        :data:`KEEP_STATISTICS_AFTER` seconds and finished its budget — there they cost a
        few percent of the call (about 5 s after a 4-minute, 20,000-trial optimization),
        while after a short run they would cost more than the first report saves. True:
        always; False: never (the first report computes and keeps them). Nothing is kept
        in a read-only cache.

    Returns
    -------
    WalkForwardResult

    Raises
    ------
    OptimizationError
        An argument that cannot work (the message names it and the fix).
    LookaheadError
        The strategy's weights use data after their date (see ``check_lookahead``).
    StudyMismatchError
        Resuming ``study`` with other data, splitter, strategy code, metric, space or
        settings.
    AllTrialsFailedError
        Every trial of a study failed (the message names the first reason).
    MachineFaultError
        A fault of the machine, not of the strategy (a full disk, a read-only directory, a
        damaged cache index or storage): the message names the path, the cause and the
        fix. No trial was counted; the same call resumes once the fault is fixed.
    """
    started = time.monotonic()
    if keep_statistics is not None and not isinstance(keep_statistics, bool):
        raise TypeError(f"keep_statistics must be None, True or False, not {keep_statistics!r}")
    with stopping_on_machine_faults(f"study {study!r}"), optuna_quiet():
        request = validate(
            strategy, data, space, splitter, metric=metric, direction=direction,
            n_trials=n_trials, study=study, storage=storage, mode=mode, top_k=top_k,
            sampler=sampler, pruner=pruner, seed=seed, n_jobs=n_jobs, cache=cache,
            settings=settings, costs=costs, delay=delay, price_field=price_field,
            missing=missing, periods_per_year=periods_per_year, constraints=constraints,
            cv_aggregate=cv_aggregate, warmup=warmup, timeout=timeout,
            show_progress=show_progress, check_lookahead=check_lookahead,
            run_config=run_config, select=select)
        opened = open_storage(request.storage)
        plan = store_plan(request, make_plan(request), opened)
        _run(request, plan, opened)
        record = read_study_keeping_snapshot(request.study, request.storage, opened)
        request.cache.pin(pin_owner(record.location, record.name), study_runs(record))
        result = result_of(record, request.cache, strategy=request.strategy, data=request.data)
        if keep_statistics is None:
            keep_statistics = (time.monotonic() - started >= KEEP_STATISTICS_AFTER
                               and result.complete)
        if keep_statistics and not request.cache.read_only:
            result.keep_report_statistics()
        return result
