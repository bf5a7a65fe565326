"""The trial loop's budget when another worker asks for a trial at the same moment.

Two workers that count the study's trials at once both see room for one more and both
ask. The later-numbered of the two trials gives way (it is failed unevaluated as
``FailureKind.RELEASED``, which neither uses the budget nor counts as settled); the
earlier-numbered one runs. The real race, with four processes, is in
``tests/test_optimize_processes.py``; here the other worker is simulated, deterministically.
"""

from __future__ import annotations

import os
import socket
import threading

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from foldwise.optimizer._trials import BudgetTally, Outcome, budget_counts, run_trials
from foldwise.records import (
    TRIAL_ATTR,
    Failure,
    FailureKind,
    TrialRecord,
    read_trial,
    trial_budget,
    write_trial_record,
)
from foldwise.storage import WORKER_ATTR, storage_of

N_TRIALS = 3


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def evaluate(trial: optuna.Trial) -> Outcome:
    x = trial.suggest_int("x", 0, 100)
    return Outcome(TrialRecord(params={"x": x}), value=float(x))


def other_worker() -> dict:
    """A live worker that is not this process (this process's parent)."""
    return {"host": socket.gethostname(), "pid": os.getppid()}


def ask_as_other_worker(study: optuna.Study, *, gives_way: bool) -> threading.Timer:
    """Ask for a trial as another worker would; a moment later that worker completes it,
    or gives it back (as its own loop does with a trial that must give way)."""
    twin = optuna.load_study(study_name=study.study_name, storage=storage_of(study))
    trial = twin.ask()
    trial.set_user_attr(WORKER_ATTR, other_worker())

    def finish() -> None:
        if gives_way:
            write_trial_record(trial, TrialRecord(params={}, failure=Failure(
                FailureKind.RELEASED, "Released", "given back")))
            twin.tell(trial, state=TrialState.FAIL)
        else:
            write_trial_record(trial, TrialRecord(params={}))
            twin.tell(trial, 50.0)

    timer = threading.Timer(0.3, finish)
    timer.start()
    return timer


def race(study: optuna.Study, *, other_first: bool) -> list[int]:
    """Make another worker ask at the same moment as the loop does, when the study holds
    ``N_TRIALS - 1`` finished trials: just before (``other_first``) or just after the loop's
    own ask. Returns the settled counts the loop seeded its samplers with."""
    ask = study.ask
    seeds: list[int] = []
    others: list[threading.Timer] = []

    def racing_ask(*args, **kwargs):
        race_now = not others and \
            budget_counts(study.get_trials(deepcopy=False)).finished == N_TRIALS - 1
        if race_now and other_first:
            others.append(ask_as_other_worker(study, gives_way=False))
        trial = ask(*args, **kwargs)
        if race_now and not other_first:
            others.append(ask_as_other_worker(study, gives_way=True))
        return trial

    study.ask = racing_ask  # type: ignore[method-assign]

    def sampler_for(settled: int) -> optuna.samplers.BaseSampler:
        seeds.append(settled)
        return optuna.samplers.RandomSampler(seed=settled)

    run_trials(study, N_TRIALS, evaluate, label="test", sampler_for=sampler_for)
    assert len(others) == 1
    others[0].join()
    return seeds


def test_the_later_numbered_of_two_simultaneous_trials_gives_way():
    study = optuna.create_study(direction="maximize")
    seeds = race(study, other_first=True)
    trials = study.get_trials(deepcopy=False)
    # trial 2 is the other worker's, asked first; the loop's trial 3 found trials 0-2
    # (two finished, one running) filling the budget and was given back
    released = trials[3]
    assert released.state == TrialState.FAIL and not released.params
    failure = read_trial(released).record.failure
    assert failure is not None and failure.kind == FailureKind.RELEASED
    assert not trial_budget(released)
    counts = budget_counts(trials)
    assert counts.finished == N_TRIALS and counts.running == 0
    assert counts.settled == N_TRIALS  # the released trial is not one the study holds
    assert len(trials) == N_TRIALS + 1
    assert seeds == [0, 1, 2]  # the loop then waited for the other worker's trial


def test_the_earlier_numbered_of_two_simultaneous_trials_runs():
    study = optuna.create_study(direction="maximize")
    seeds = race(study, other_first=False)
    trials = study.get_trials(deepcopy=False)
    # the loop's trial 2 was asked first and ran, although the other worker's trial 3 was
    # running when the loop read the study again; trial 3 is the one that gives way
    assert trials[2].state == TrialState.COMPLETE and "x" in trials[2].params
    assert read_trial(trials[2]).record.failure is None
    assert [trial_budget(t) for t in trials] == [True, True, True, False]
    assert seeds == [0, 1, 2]


# --- the tally counts what budget_counts counts, re-reading only new trials ---------------

_STATES = [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.RUNNING]


def _frozen(number: int, state: TrialState, kind: int) -> optuna.trial.FrozenTrial:
    """A trial in ``state`` whose record is the strategy's failure, infeasible or plain."""
    record: dict = {"params": {}}
    if kind == 1:
        record["failure"] = {"kind": "strategy", "type": "ValueError", "message": "x"}
    elif kind == 4:
        record["failure"] = {"kind": "worker_died", "type": "WorkerDied", "message": "x"}
    elif kind == 2:
        record["infeasible"] = "fast >= slow"
    trial = optuna.trial.create_trial(
        state=state, value=1.0 if state == TrialState.COMPLETE else None,
        user_attrs={} if kind == 3 else {TRIAL_ATTR: record})
    trial.number = number
    return trial


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(_STATES), st.integers(0, 4)), max_size=8),
                min_size=1, max_size=8),
       st.data())
def test_the_tally_equals_a_full_count_as_a_study_grows(batches, data):
    """Trials arrive in batches; running ones finish later. After each read the tally's
    counts (all trials, and those before any number) equal counting every trial."""
    tally = BudgetTally()
    trials: list[optuna.trial.FrozenTrial] = []
    for batch in batches:
        # running trials may have finished since the last read
        for i, trial in enumerate(trials):
            if trial.state == TrialState.RUNNING and data.draw(st.booleans()):
                trials[i] = _frozen(i, data.draw(st.sampled_from(_STATES[:3])),
                                    data.draw(st.integers(0, 4)))
        trials += [_frozen(len(trials) + i, state, kind) for i, (state, kind) in
                   enumerate(batch)]
        assert vars(tally.counts(trials)) == vars(budget_counts(trials))
        before = data.draw(st.integers(0, len(trials) + 1))
        assert vars(tally.counts(trials, before=before)) == vars(
            budget_counts([t for t in trials if t.number < before]))
