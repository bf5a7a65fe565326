"""BatchedJournalStorage: a trial in two appends, the same reads as Optuna's storage."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from foldwise.storage import (
    WORKER_ATTR,
    BatchedJournalStorage,
    FileJournalBackend,
    parse_storage,
    storage_of,
    trial_id,
)

WORKER = {"host": "h", "pid": 1, "start": "1"}


class CountingBackend(FileJournalBackend):
    def __init__(self, path):
        super().__init__(path)
        self.appends = 0

    def append_logs(self, logs):
        self.appends += 1
        super().append_logs(logs)

    def append_logs_read(self, logs, log_number_read):
        self.appends += 1
        return super().append_logs_read(logs, log_number_read)


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _batched(path):
    backend = CountingBackend(path)
    return BatchedJournalStorage(backend, creation_user_attrs=lambda: {WORKER_ATTR: WORKER}), backend


def _plain(path):
    """What another process reads: Optuna's own storage on the same file."""
    return JournalStorage(FileJournalBackend(path))


def _running_trial(path):
    """A study on a batching storage with one running trial (a parameter, an attribute)."""
    storage, _ = _batched(path)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.suggest_int("k", 1, 9)
    trial.set_user_attr("a", 1)
    return storage, study, trial


def _read_one(path):
    [trial] = optuna.load_study(study_name="s", storage=_plain(path)).trials
    return trial


def test_the_default_journal_storage_batches():
    assert isinstance(parse_storage("journal:/tmp/x.journal").open(), BatchedJournalStorage)


def test_a_trial_is_two_appends_and_reads_back_the_same_in_optunas_storage(tmp_path):
    path = tmp_path / "s.journal"
    storage, backend = _batched(path)
    study = optuna.create_study(storage=storage, study_name="s")
    before = backend.appends
    trial = study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    k = trial.suggest_int("k", 1, 9)
    trial.set_user_attr("metrics", {"sharpe": 1.5})
    storage_of(study).set_trial_system_attr(trial_id(trial), "note", "n")
    study.tell(trial, x + k)
    assert backend.appends - before == 2
    [read] = optuna.load_study(study_name="s", storage=_plain(path)).trials
    assert read.state == TrialState.COMPLETE and read.value == x + k
    assert read.params == {"x": x, "k": k}
    assert read.user_attrs == {WORKER_ATTR: WORKER, "metrics": {"sharpe": 1.5}}
    assert read.system_attrs == {"note": "n"}
    assert read.datetime_start is not None and read.datetime_complete is not None


def test_a_running_trial_is_seen_whole_here_and_running_with_its_worker_elsewhere(tmp_path):
    path = tmp_path / "s.journal"
    storage, study, trial = _running_trial(path)
    [here] = study.get_trials()
    assert here.params == trial.params and here.user_attrs["a"] == 1
    there = _read_one(path)
    assert there.state == TrialState.RUNNING and there.params == {}
    assert there.user_attrs == {WORKER_ATTR: WORKER}
    storage.flush(trial_id(trial))
    there = _read_one(path)
    assert there.params == trial.params and there.user_attrs["a"] == 1
    study.tell(trial, 1.0)
    there = _read_one(path)
    assert there.state == TrialState.COMPLETE and there.user_attrs["a"] == 1


def test_an_abandoned_trial_leaves_only_its_running_creation(tmp_path):
    path = tmp_path / "s.journal"
    storage, study, trial = _running_trial(path)
    del storage, study, trial  # the process dies without telling
    there = _read_one(path)
    assert there.state == TrialState.RUNNING and there.user_attrs == {WORKER_ATTR: WORKER}


def test_errors_are_raised_at_the_call_as_with_optunas_storage(tmp_path):
    storage, _ = _batched(tmp_path / "s.journal")
    study = optuna.create_study(storage=storage, study_name="s")
    first = study.ask()
    first.suggest_int("k", 1, 9)
    study.tell(first, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial_id(first), "late", 1)
    second = study.ask()
    with pytest.raises(ValueError, match="different distribution"):
        second.suggest_categorical("k", ["a", "b"])
    study.tell(second, 2.0)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]


def test_pruning_and_intermediate_values_work_and_are_written_with_the_end(tmp_path):
    path = tmp_path / "s.journal"
    storage, _ = _batched(path)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1,
                                                                   n_warmup_steps=0))
    for value in (1.0, 2.0):
        trial = study.ask()
        trial.report(value, step=0)
        study.tell(trial, value)
    trial = study.ask()
    trial.report(-5.0, step=0)
    assert trial.should_prune()
    study.tell(trial, state=TrialState.PRUNED)
    read = optuna.load_study(study_name="s", storage=_plain(path)).trials
    assert [t.intermediate_values for t in read] == [{0: 1.0}, {0: 2.0}, {0: -5.0}]
    assert read[-1].state == TrialState.PRUNED


def test_trials_of_other_storages_on_the_file_are_written_at_once(tmp_path):
    path = tmp_path / "s.journal"
    other = optuna.create_study(storage=_plain(path), study_name="s")
    foreign = other.ask()
    storage, backend = _batched(path)
    before = backend.appends
    storage.set_trial_user_attr(trial_id(foreign), "seen", True)  # not one of its trials
    assert backend.appends == before + 1
    assert other.trials[0].user_attrs == {"seen": True}


def test_enqueued_trials_and_threads_work_as_with_optunas_storage(tmp_path):
    path = tmp_path / "s.journal"
    storage, _ = _batched(path)
    study = optuna.create_study(storage=storage, study_name="s",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"x": 0.25})
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) ** 2, n_trials=20, n_jobs=2)
    read = optuna.load_study(study_name="s", storage=_plain(path)).trials
    assert len(read) == 20 and all(t.state == TrialState.COMPLETE for t in read)
    assert read[0].params == {"x": 0.25}
    assert all(t.value == pytest.approx(t.params["x"] ** 2) for t in read)


def test_a_trial_failed_by_another_process_raises_once_at_its_end_not_at_later_calls(tmp_path):
    # Regression: the kept updates are replayed one log at a time from the file; when
    # another process had finished the trial (e.g. failed it as a dead worker's), each of
    # them raised UpdateFinishedTrialError at a later, unrelated call of this process.
    path = tmp_path / "s.journal"
    storage, study, trial = _running_trial(path)
    trial.set_user_attr("b", 2)
    other = _plain(path)
    assert other.set_trial_state_values(trial_id(trial), TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id(trial), TrialState.COMPLETE, [1.0])
    assert storage.get_trial(trial_id(trial)).state == TrialState.FAIL  # no error left over
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    nxt = study.ask()
    study.tell(nxt, 2.0)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    read = optuna.load_study(study_name="s", storage=_plain(path)).trials
    assert [t.state for t in read] == [TrialState.FAIL, TrialState.COMPLETE]


def test_trial_times_are_written_as_the_installed_optuna_writes_them(tmp_path):
    # Regression: times were always written in UTC with an offset (Optuna 5's form); Optuna
    # 4 hands those back as aware datetimes, which cannot be compared with its naive ones.
    path = tmp_path / "s.journal"
    storage, _ = _batched(path)
    batched = optuna.create_study(storage=storage, study_name="s")
    batched.tell(batched.ask(), 1.0)
    plain = optuna.load_study(study_name="s", storage=_plain(path))
    plain.tell(plain.ask(), 2.0)
    ours, theirs = optuna.load_study(study_name="s", storage=_plain(path)).trials
    for field in ("datetime_start", "datetime_complete"):
        mine, optunas = getattr(ours, field), getattr(theirs, field)
        assert (mine.tzinfo is None) == (optunas.tzinfo is None)
        assert abs((optunas - mine).total_seconds()) < 60


class ReadCountingBackend(CountingBackend):
    def __init__(self, path):
        super().__init__(path)
        self.logs_read = 0

    def read_logs(self, log_number_from):
        logs = list(super().read_logs(log_number_from))
        self.logs_read += len(logs)
        return iter(logs)


def _comparable(trials):
    return [(t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs)
            for t in trials]


def test_a_trial_of_the_only_writer_is_not_read_back_and_reads_as_a_reader_decodes_it(tmp_path):
    path = tmp_path / "s.journal"
    backend = ReadCountingBackend(path)
    storage = BatchedJournalStorage(backend, creation_user_attrs=lambda: {WORKER_ATTR: WORKER})
    study = optuna.create_study(storage=storage, study_name="s")
    read_before = backend.logs_read
    for value in (1.0, 2.0):
        trial = study.ask()
        trial.suggest_int("k", 1, 9)
        trial.set_user_attr("pair", (1, 2))  # a tuple here, a JSON list in the file
        storage.flush(trial_id(trial))
        study.tell(trial, value)
    assert backend.logs_read == read_before  # its own lines were never read back
    assert [t.user_attrs["pair"] for t in study.trials] == [[1, 2], [1, 2]]
    fresh = optuna.load_study(study_name="s", storage=_plain(path))
    assert _comparable(study.trials) == _comparable(fresh.trials)


def test_a_writer_reads_what_another_process_appended_before_its_own_lines(tmp_path):
    path = tmp_path / "s.journal"
    here = BatchedJournalStorage(ReadCountingBackend(path))
    study = optuna.create_study(storage=here, study_name="s")
    there = optuna.load_study(study_name="s", storage=BatchedJournalStorage(
        FileJournalBackend(path)))
    mine = study.ask()
    mine.suggest_int("k", 1, 9)
    theirs = there.ask()  # appended between this process's creation and its end
    theirs.suggest_int("k", 1, 9)
    there.tell(theirs, 5.0)
    study.tell(mine, 1.0)
    fresh = optuna.load_study(study_name="s", storage=_plain(path))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert _comparable(study.trials) == _comparable(fresh.trials)
    again = study.ask()  # and the next append, at the end again, is applied as written
    study.tell(again, 2.0)
    assert _comparable(study.trials) == _comparable(
        optuna.load_study(study_name="s", storage=_plain(path)).trials)
