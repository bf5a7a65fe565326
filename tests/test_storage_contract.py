"""Optuna's own storage test case, run on foldwise's journal storages."""

from __future__ import annotations

import time
import warnings

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import InMemoryStorage, JournalStorage, RDBStorage
from optuna.testing.pytest_storages import StorageTestCase
from optuna.trial import TrialState

from foldwise.storage import (
    BatchedJournalStorage,
    FileJournalBackend,
    fail_stale_trials,
    fail_trial,
    flush_trial,
    heartbeat_interval,
    record_heartbeat,
    storage_of,
    tell,
    trial_id,
)


class TestBatchedJournalStorage(StorageTestCase):
    @pytest.fixture
    def storage(self, tmp_path):
        return BatchedJournalStorage(FileJournalBackend(tmp_path / "studies.journal"))


class _CompactingEagerly(BatchedJournalStorage):
    """Compacts every study but the one it creates a trial in, at every creation: every read
    of another study then replays the journal again."""

    def create_new_trial(self, study_id, template_trial=None):
        self.keep_full({study_id})
        return super().create_new_trial(study_id, template_trial)


class TestBatchedJournalStorageCompacting(StorageTestCase):
    @pytest.fixture
    def storage(self, tmp_path):
        return _CompactingEagerly(FileJournalBackend(tmp_path / "studies.journal"),
                                  compact_above=0)


class TestJournalStorageOnFoldwiseFile(StorageTestCase):
    @pytest.fixture
    def storage(self, tmp_path):
        return JournalStorage(FileJournalBackend(tmp_path / "studies.journal"))


# --- the Optuna internals foldwise reads, through foldwise.storage only ---------------------


_OPENERS = {
    "batched": lambda tmp: BatchedJournalStorage(FileJournalBackend(tmp / "b.journal")),
    "journal": lambda tmp: JournalStorage(FileJournalBackend(tmp / "j.journal")),
    "memory": lambda tmp: InMemoryStorage(),
    "sqlite": lambda tmp: RDBStorage(f"sqlite:///{tmp / 'db.sqlite'}"),
}


@pytest.fixture(params=sorted(_OPENERS))
def any_storage(request, tmp_path):
    return _OPENERS[request.param](tmp_path)


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_trial_id_and_storage_of_name_what_the_storage_uses(any_storage):
    study = optuna.create_study(storage=any_storage, study_name="s")
    storage = storage_of(study)
    if isinstance(any_storage, RDBStorage):  # Optuna wraps it in a cache that delegates to it
        assert storage is not any_storage and storage.get_all_studies()[0].study_name == "s"
    else:
        assert storage is any_storage
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    trial = study.ask()
    frozen = study.trials[-1]
    study_id = storage.get_study_id_from_name("s")
    assert trial_id(trial) == trial_id(frozen) == storage.get_trial_id_from_study_id_trial_number(
        study_id, trial.number)
    assert storage.get_trial(trial_id(trial)).number == trial.number


def test_flush_trial_shows_a_running_trial_to_other_processes(tmp_path):
    path = tmp_path / "b.journal"
    study = optuna.create_study(storage=BatchedJournalStorage(FileJournalBackend(path)),
                                study_name="s")
    trial = study.ask()
    trial.suggest_int("k", 1, 9)

    def seen():
        return optuna.load_study(study_name="s",
                                 storage=JournalStorage(FileJournalBackend(path))).trials[0]

    assert seen().params == {}
    flush_trial(trial)
    assert seen().params == trial.params and seen().state == TrialState.RUNNING


def test_flush_trial_is_a_no_op_on_other_storages(any_storage):
    study = optuna.create_study(storage=any_storage)
    trial = study.ask()
    trial.suggest_int("k", 1, 9)
    flush_trial(trial)
    assert study.trials[0].params == trial.params


def test_fail_trial_fails_a_running_trial_once(any_storage):
    study = optuna.create_study(storage=any_storage)
    running = study.ask()
    [frozen] = study.trials
    assert fail_trial(study, frozen, {"error": {"type": "WorkerDied"}, "n": 1})
    [failed] = study.trials
    assert failed.state == TrialState.FAIL and failed.user_attrs == {
        "error": {"type": "WorkerDied"}, "n": 1}
    assert not fail_trial(study, frozen, {"late": True})  # already finished
    assert "late" not in study.trials[0].user_attrs
    with pytest.raises(UpdateFinishedTrialError):  # the running process learns it at its end
        storage_of(study).set_trial_state_values(trial_id(running), TrialState.COMPLETE, [1.0])


def test_fail_trial_returns_false_for_a_trial_another_process_finished(tmp_path):
    path = tmp_path / "b.journal"
    here = optuna.create_study(storage=JournalStorage(FileJournalBackend(path)), study_name="s")
    elsewhere = optuna.load_study(study_name="s",
                                  storage=BatchedJournalStorage(FileJournalBackend(path)))
    trial = elsewhere.ask()
    [frozen] = here.trials
    elsewhere.tell(trial, 1.0)
    assert not fail_trial(here, frozen, {"error": "x"})
    assert here.trials[0].state == TrialState.COMPLETE and "error" not in here.trials[0].user_attrs


def test_tell_finishes_trials_as_study_tell_does_without_copying_them(any_storage, monkeypatch):
    study = optuna.create_study(storage=any_storage)

    def no_copy(value, memo=None):
        raise AssertionError("the finished trial was copied")

    monkeypatch.setattr(optuna.study.study.copy, "deepcopy", no_copy)  # what Study.tell returns
    told = [(1.5, None), (None, TrialState.PRUNED), (None, TrialState.FAIL), (float("nan"), None)]
    for value, state in told:  # a NaN is a FAIL, with Optuna's warning
        trial = study.ask()
        trial.set_user_attr("record", {"evaluations": [1, 2, 3]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tell(study, trial, value, state)
    monkeypatch.undo()
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.FAIL]
    assert study.trials[0].value == 1.5 and study.trials[0].user_attrs["record"] == {
        "evaluations": [1, 2, 3]}
    with pytest.raises(ValueError, match="Cannot tell a COMPLETE trial"):  # as Study.tell
        tell(study, study.trials[0].number, 2.0)


def test_storages_without_heartbeats(any_storage):
    study = optuna.create_study(storage=any_storage)
    trial = study.ask()
    assert heartbeat_interval(any_storage) is None
    record_heartbeat(any_storage, trial_id(trial))  # no-op
    fail_stale_trials(study)  # no-op
    assert study.trials[0].state == TrialState.RUNNING


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with")
def test_a_trial_whose_heartbeat_stops_is_failed(tmp_path):
    storage = RDBStorage(f"sqlite:///{tmp_path / 'db.sqlite'}", heartbeat_interval=1,
                         grace_period=1)
    assert heartbeat_interval(storage) == 1
    study = optuna.create_study(storage=storage)
    beating, stale = study.ask(), study.ask()
    record_heartbeat(storage, trial_id(stale))
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        record_heartbeat(storage, trial_id(beating))
        time.sleep(0.2)
    fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.FAIL]
