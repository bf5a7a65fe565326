"""The trial loop: ask, evaluate, tell — with a budget that survives crashes and workers.

Optuna's ``study.optimize`` counts the trials of one call; foldwise counts the trials of
the study, so that ``n_trials`` is the total per study whatever the number of calls,
restarts and worker processes:

* **Budget.** A study is done when it holds ``n_trials`` finished evaluations: COMPLETE
  trials, FAIL trials whose strategy raised or returned a bad metric, and trials a pruner
  stopped. Infeasible parameter sets (they violate a constraint; never backtested) and
  trials whose worker died do not count.
* **No overshoot.** Before asking for a trial a worker counts the trials other live
  workers are running; when they would fill the budget it waits for them instead (their
  trial may still fail and leave room). Workers that count at the same moment may all
  ask, so after asking each one reads the study again: a trial whose lower-numbered
  trials (finished or running) fill the budget is given back unevaluated
  (``FailureKind.RELEASED``, not counted) and its worker waits.
* **Dead workers.** Every trial records the worker running it (host, pid, process start
  time). A RUNNING trial whose worker is gone from this host is marked FAIL (reason
  ``worker died``) and its budget is run again. On RDB storages with heartbeats, Optuna's
  own stale-trial check runs too.
* **Faults are not failures.** Only an exception the strategy raised (tagged by the
  cache, :func:`~foldwise.errors.raised_by_strategy`) fails a trial for good. Any other
  exception during an evaluation — a full disk, a read-only directory, a damaged cache
  index, a storage error, a defect — leaves the trial to be run again (``FailureKind.FAULT``,
  not counted) and stops the run (see :mod:`foldwise.optimizer._faults`).
* **Failures.** A trial whose strategy raises is told FAIL with a
  :class:`~foldwise.records.Failure` (its kind, the error's type and message, the
  traceback) in its :class:`~foldwise.records.TrialRecord`, one warning line is logged,
  and the study goes on. Errors that would fail every trial the same way (a parameter the
  strategy does not have, a constraint that raises) stop the optimization at once instead.
  Whether a trial used the budget is read from its record (:func:`~foldwise.records.trial_budget`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from foldwise.errors import (
    AllTrialsFailedError,
    SearchSpaceError,
    StrategyParameterError,
    raised_by_strategy,
)
from foldwise.records import (
    Failure,
    FailureKind,
    TrialRecord,
    failure_attrs,
    read_trial,
    trial_budget,
    write_trial_record,
)
from foldwise.storage import (
    WORKER_ATTR,
    current_worker,
    fail_stale_trials,
    fail_trial,
    heartbeat_interval,
    is_dead,
    is_this_process,
    record_heartbeat,
    storage_of,
    tell,
    trial_id,
)

from ._faults import machine_fault
from ._flush import DelayedFlush

__all__ = ["Outcome", "budget_counts", "first_failure", "run_trials"]

logger = logging.getLogger(__name__)

#: Infeasible parameter sets tolerated in a row before the constraints are declared to
#: exclude (nearly) the whole space.
MAX_INFEASIBLE_IN_A_ROW = 1000

_POLL_SECONDS = 0.05

#: A RUNNING trial that has not recorded its worker after this many seconds is an orphan.
ORPHAN_SECONDS = 10.0

# (study name, trial number) of the trials this process is evaluating now: a RUNNING trial
# of this very process that is not among them was left behind (see ``_release``).
_evaluating: set[tuple[str, int]] = set()


@dataclass
class Outcome:
    """What evaluating one trial gave: its record, and its objective value or pruning."""

    record: TrialRecord
    value: float | None = None
    pruned: bool = False


@dataclass
class Counts:
    finished: int = 0
    complete: int = 0
    failed: int = 0
    running: int = 0
    infeasible: int = 0

    @property
    def settled(self) -> int:
        """Trials this study's sequence holds for good: finished or infeasible (not the
        running ones, nor those whose worker died or was interrupted, which run again)."""
        return self.finished + self.infeasible


def _classify(trial: optuna.trial.FrozenTrial, counts: Counts) -> None:
    """Add ``trial`` to ``counts`` (see the module docstring for what uses the budget)."""
    state = trial.state
    if state in (TrialState.RUNNING, TrialState.WAITING):
        counts.running += 1
        return
    if not trial_budget(trial):
        if state == TrialState.PRUNED:  # pruned without using the budget: infeasible
            counts.infeasible += 1
        return  # infeasible, a dead worker's, or failed outside foldwise: re-run
    counts.finished += 1
    if state == TrialState.COMPLETE:
        counts.complete += 1
    elif state == TrialState.FAIL:
        counts.failed += 1


def budget_counts(trials: list[optuna.trial.FrozenTrial]) -> Counts:
    """Count the trials that use the budget (see the module docstring)."""
    counts = Counts()
    for trial in trials:
        _classify(trial, counts)
    return counts


class BudgetTally:
    """:func:`budget_counts` of one study read again and again, at the cost of its new trials.

    A finished trial never changes state, and the trial loop reads its study before every
    trial: counting every trial each time made the loop's own cost grow with the study
    (quadratic over a 1000-trial fold). The tally remembers the longest run of trials
    numbered ``0, 1, ...`` that are all finished, with their running counts, and classifies
    only the trials after it on each read. A list that is not numbered ``0, 1, ...`` in
    order (never the case for one study's trials) is counted in full.
    """

    def __init__(self) -> None:
        self._settled = 0  # trials 0 .. _settled - 1 are finished
        self._prefix: list[Counts] = [Counts()]  # _prefix[i]: counts of trials 0 .. i - 1

    def counts(self, trials: list[optuna.trial.FrozenTrial], before: int | None = None
               ) -> Counts:
        """Counts of ``trials`` (one study's, in order), or of those numbered below ``before``."""
        stop = len(trials) if before is None else min(before, len(trials))
        if any(trials[i].number != i for i in (0, stop - 1) if 0 <= i < len(trials)):
            return budget_counts([t for t in trials if before is None or t.number < before])
        while self._settled < stop and trials[self._settled].state not in (
                TrialState.RUNNING, TrialState.WAITING):
            grown = Counts(**vars(self._prefix[-1]))
            _classify(trials[self._settled], grown)
            self._prefix.append(grown)
            self._settled += 1
        known = min(self._settled, stop)
        counts = Counts(**vars(self._prefix[known]))
        for trial in trials[known:stop]:
            _classify(trial, counts)
        return counts


def fail_dead_workers(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> int:
    """Mark FAIL the RUNNING trials whose worker process is gone; return how many."""
    failed = 0
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        worker = trial.user_attrs.get(WORKER_ATTR)
        if worker is None:
            # Killed between asking for the trial and naming itself: a live worker names
            # itself within milliseconds, so an anonymous trial this old is an orphan.
            started = trial.datetime_start
            if started is None or (datetime.now() - started).total_seconds() < ORPHAN_SECONDS:
                continue
            worker = {"pid": None}
        elif is_this_process(worker):
            if (study.study_name, trial.number) in _evaluating:
                continue  # being evaluated by this process right now
        elif not is_dead(worker):
            continue
        died = Failure(FailureKind.WORKER_DIED, "WorkerDied",
                       f"worker {worker} died while running it")
        if not fail_trial(study, trial, failure_attrs(died, trial.params)):
            continue  # another process got there first
        logger.info("%s: trial %d was left running by a worker that died (pid %s); it is "
                    "marked failed and its budget is run again", study.study_name,
                    trial.number, worker.get("pid"))
        failed += 1
    if heartbeat_interval(storage_of(study)):
        fail_stale_trials(study)
    return failed


def first_failure(trials: list[optuna.trial.FrozenTrial]) -> str | None:
    """``"Type: message (trial n)"`` of the first failure of the strategy, or None."""
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state != TrialState.FAIL:
            continue
        failure = read_trial(trial).record.failure
        if failure is not None and failure.kind.uses_budget:
            return f"{failure.describe()} (trial {trial.number})"
    return None


class _Heartbeat:
    """Records heartbeats of the running trial on storages that support them."""

    def __init__(self, storage: BaseStorage) -> None:
        interval = heartbeat_interval(storage)
        self._storage = storage if interval else None
        self._interval = interval or 0
        self._trial_id: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self._storage is not None:
            self._thread = threading.Thread(target=self._beat, name="foldwise-heartbeat",
                                            daemon=True)
            self._thread.start()
        return self

    def watch(self, trial_id: int | None) -> None:
        self._trial_id = trial_id
        if trial_id is not None and self._storage is not None:
            record_heartbeat(self._storage, trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            trial_id = self._trial_id
            if trial_id is not None and self._storage is not None:
                try:
                    record_heartbeat(self._storage, trial_id)
                except Exception:
                    logger.debug("heartbeat of trial %s failed", trial_id, exc_info=True)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)


def run_trials(study: optuna.Study, n_trials: int, evaluate: Callable[[optuna.Trial], Outcome],
               *, label: str, deadline: float | None = None,
               on_finished: Callable[[], None] | None = None,
               sampler_for: Callable[[int], optuna.samplers.BaseSampler] | None = None) -> str:
    """Run trials of ``study`` until it holds ``n_trials`` finished evaluations.

    Parameters
    ----------
    evaluate
        Called with each new trial; returns an :class:`Outcome` or raises.
    label
        How to name the study in log lines (e.g. ``"fold 2"``).
    deadline
        ``time.monotonic()`` value after which no new trial starts.
    on_finished
        Called after each trial that used the budget (progress bars).
    sampler_for
        Called before each trial with the number of trials the study holds for good
        (:attr:`Counts.settled`); the sampler it returns suggests that trial. Seeded from
        that number, the sampler's randomness depends on the seed and the place of the
        trial in the study, not on the history of the process, so a study killed and
        resumed suggests what it would have suggested uninterrupted.

    Returns
    -------
    str
        ``"done"`` or ``"timeout"``.

    Raises
    ------
    AllTrialsFailedError
        If the budget is spent and every evaluation failed (names the first reason).
    """
    worker = current_worker()
    infeasible_in_a_row = 0
    tally = BudgetTally()
    with _Heartbeat(storage_of(study)) as heartbeat, DelayedFlush() as early:
        while True:
            trials = study.get_trials(deepcopy=False)
            counts = tally.counts(trials)
            if counts.running and fail_dead_workers(study, trials):
                continue
            if counts.finished >= n_trials:
                break
            if deadline is not None and time.monotonic() >= deadline:
                return "timeout"
            if counts.finished + counts.running >= n_trials:
                time.sleep(_POLL_SECONDS)  # the others' running trials fill the budget
                continue
            if sampler_for is not None:
                study.sampler = sampler_for(counts.settled)
            trial = study.ask()
            # No trial created since the read (the new one is numbered next): the trials
            # before it are those counted, whose finished + running can only have fallen
            # since (a trial ends at most once), so it has room without a second read.
            if trial.number != len(trials) and _beyond_budget(study, trial.number, n_trials,
                                                              tally):
                _give_back(study, trial, label)
                continue  # and wait: the trials before it fill the budget
            running = (study.study_name, trial.number)
            _evaluating.add(running)
            try:
                if trial.user_attrs.get(WORKER_ATTR) != worker:  # else written at creation
                    trial.set_user_attr(WORKER_ATTR, worker)
                heartbeat.watch(trial_id(trial))
                early.watch(trial)
                outcome = evaluate(trial)
            except (StrategyParameterError, SearchSpaceError) as exc:
                _tell_failed(study, trial, Failure.from_exception(exc, FailureKind.STRATEGY))
                raise
            except Exception as exc:
                if not raised_by_strategy(exc):
                    # a fault of the machine, the storage or the cache (or a defect of
                    # foldwise): the trial is not the strategy's failure; it runs again
                    _release(study, trial, exc)
                    fault = machine_fault(exc, f"{label}, trial {trial.number}")
                    if fault is None:
                        raise
                    raise fault from exc
                failure = Failure.from_exception(exc, FailureKind.STRATEGY)
                _tell_failed(study, trial, failure)
                logger.warning("%s trial %d failed: %s (traceback in result.trials and in the "
                               "trial's record)", label, trial.number, failure.describe())
                infeasible_in_a_row = 0
                if on_finished:
                    on_finished()
                continue
            except BaseException as exc:  # interrupted: leave a failed trial, not a running one
                _tell_failed(study, trial, Failure.from_exception(exc, FailureKind.INTERRUPTED))
                raise
            finally:
                early.watch(None)
                heartbeat.watch(None)
                _evaluating.discard(running)
            record = outcome.record
            if record.infeasible is not None:
                write_trial_record(trial, record)
                tell(study, trial, state=TrialState.PRUNED)
                infeasible_in_a_row += 1
                if infeasible_in_a_row >= MAX_INFEASIBLE_IN_A_ROW:
                    raise SearchSpaceError(
                        f"{label}: {infeasible_in_a_row} parameter sets in a row violated the "
                        f"constraints (last: {record.infeasible}); they exclude (nearly) the "
                        "whole search space. Loosen them or narrow the ranges to the feasible "
                        "region.")
                continue
            infeasible_in_a_row = 0
            if outcome.pruned:
                write_trial_record(trial, record)
                tell(study, trial, state=TrialState.PRUNED)
            elif record.failure is not None or outcome.value is None \
                    or not math.isfinite(outcome.value):
                failure = record.failure or Failure(
                    FailureKind.NON_FINITE, "NonFiniteMetric",
                    f"the objective is {outcome.value}")
                _tell_failed(study, trial, failure, record)
                logger.warning("%s trial %d failed: %s", label, trial.number,
                               failure.describe())
            else:
                write_trial_record(trial, record)
                tell(study, trial, outcome.value)
            if on_finished:
                on_finished()
    trials = study.get_trials(deepcopy=False)
    counts = budget_counts(trials)
    if counts.complete == 0 and counts.failed > 0:
        raise AllTrialsFailedError(
            f"{label}: all {counts.failed} evaluated trials failed; the first reason: "
            f"{first_failure(trials)}. Fix the strategy (run it once with "
            "strategy.run(data, params) to see the full traceback), or check the metric.")
    return "done"


def _beyond_budget(study: optuna.Study, number: int, n_trials: int,
                   tally: BudgetTally | None = None) -> bool:
    """Whether trial ``number``, just asked for, would run beyond the budget.

    Counting the trials before asking is not enough: workers that count at the same moment
    all see room for one more and all ask. So the study is read again after the ask, and
    the new trial keeps its place only if the trials numbered before it — finished, or
    running and so perhaps about to finish — leave room for it. The decision depends on
    trial numbers only: of two workers asking at once, the later-numbered trial sees the
    earlier one and gives way, the earlier one does not see the later one. Trial numbers
    follow the order of creation, so every trial numbered before this one is in the read.
    """
    counts = (tally or BudgetTally()).counts(study.get_trials(deepcopy=False), before=number)
    return counts.finished + counts.running >= n_trials


def _give_back(study: optuna.Study, trial: optuna.Trial, label: str) -> None:
    """Fail ``trial`` unevaluated as ``FailureKind.RELEASED``: it does not use the budget
    and is not among the trials the study holds for good (:attr:`Counts.settled`), so the
    sampler seeds of later trials are those of a study that never asked for it."""
    logger.debug("%s: trial %d gives way to the running trials numbered before it, which "
                 "fill the budget", label, trial.number)
    _tell_failed(study, trial, Failure(
        FailureKind.RELEASED, "Released",
        "asked for while trials numbered before it filled the budget; given back unevaluated"))


def _release(study: optuna.Study, trial: optuna.Trial, exc: Exception) -> None:
    """Fail ``trial`` as not the strategy's (``FailureKind.FAULT``: it does not use the
    budget and runs again). When the storage itself is what failed, the trial stays RUNNING;
    the next run fails it as its worker's (this process no longer evaluates it)."""
    try:
        _tell_failed(study, trial, Failure.from_exception(exc, FailureKind.FAULT))
    except Exception:
        logger.debug("trial %d could not be marked failed after %r", trial.number, exc,
                     exc_info=True)


def _tell_failed(study: optuna.Study, trial: optuna.Trial, failure: Failure,
                 record: TrialRecord | None = None) -> None:
    """Record ``failure`` on ``trial`` (with what it evaluated, if anything) and fail it."""
    base = record or TrialRecord(params=dict(trial.params))
    write_trial_record(trial, TrialRecord(params=base.params, evaluations=base.evaluations,
                                          failure=failure))
    tell(study, trial, state=TrialState.FAIL)
