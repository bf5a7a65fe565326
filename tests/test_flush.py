"""A running trial's parameters are written ahead of its end only when it runs long."""

from __future__ import annotations

import time

import optuna
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from foldwise.optimizer._flush import DelayedFlush
from foldwise.storage import BatchedJournalStorage, FileJournalBackend


def _study(tmp_path):
    path = tmp_path / "b.journal"
    study = optuna.create_study(storage=BatchedJournalStorage(FileJournalBackend(path)),
                                study_name="s")

    def seen():
        """The first trial as another process reads it from the file."""
        return optuna.load_study(study_name="s",
                                 storage=JournalStorage(FileJournalBackend(path))).trials[0]

    return study, path, seen


def test_a_long_trial_shows_its_parameters_before_it_ends(tmp_path):
    study, _, seen = _study(tmp_path)
    with DelayedFlush(after=0.05) as early:
        trial = study.ask()
        early.watch(trial)
        trial.suggest_int("k", 1, 9)
        deadline = time.monotonic() + 10
        while seen().params == {} and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen().params == trial.params and seen().state == TrialState.RUNNING
        early.watch(None)
        study.tell(trial, 1.0)
    assert seen().state == TrialState.COMPLETE and seen().params == trial.params


def test_a_short_trial_is_written_at_its_creation_and_its_end_only(tmp_path):
    study, path, seen = _study(tmp_path)
    with DelayedFlush(after=5.0) as early:
        before = path.read_bytes().count(b"\n")
        trial = study.ask()
        early.watch(trial)
        trial.suggest_int("k", 1, 9)
        time.sleep(0.1)
        assert seen().params == {}  # not written yet
        early.watch(None)
        study.tell(trial, 1.0)
    # one append at creation, one at the end holding the parameter and the state
    appended = path.read_bytes().count(b"\n") - before
    assert appended == 3  # create; set param + set state written together
    assert seen().params == trial.params and seen().state == TrialState.COMPLETE


def test_a_trial_that_ends_before_the_delay_is_not_flushed_after(tmp_path):
    study, path, _ = _study(tmp_path)
    with DelayedFlush(after=0.05) as early:
        trial = study.ask()
        early.watch(trial)
        trial.suggest_int("k", 1, 9)
        study.tell(trial, 1.0)
        early.watch(None)
        size = path.stat().st_size
        time.sleep(0.2)
    assert path.stat().st_size == size
