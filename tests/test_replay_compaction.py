"""The journal replay holds in full only the studies a process works on.

What a compacting replay gives any reader is what Optuna's own replay of the same journal
gives; the finished trials of the other studies cost a number and a state in memory; and a
study optimized with compaction is the very same study as one optimized without.
"""

from __future__ import annotations

import gc
import tracemalloc

import optuna
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from foldwise.examples import sma_crossover
from foldwise.optimizer import optimize
from foldwise.space import Int
from foldwise.splits import WalkForward
from foldwise.storage import (
    BatchedJournalStorage,
    FileJournalBackend,
    _replay,
    flush_trial,
    focus_replay,
)
from foldwise.storage._replay import CompactReplay, Settled
from tests._cache_support import make_data


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _plain(path) -> JournalStorage:
    """Optuna's own replay of the journal at ``path`` (the reference)."""
    return JournalStorage(FileJournalBackend(path, read_only=True))


def _same_as_optuna(storage: BatchedJournalStorage, path, names) -> None:
    reference = _plain(path)
    for name in names:
        got = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        want = optuna.load_study(study_name=name, storage=reference).get_trials(deepcopy=False)
        assert got == want, name
        assert all(not isinstance(t, Settled) for t in got)


def _settled(storage: BatchedJournalStorage) -> int:
    return sum(isinstance(t, Settled) for t in storage._replay_result._trials.values())


# --- the replay compacts, and every read sees Optuna's trials -------------------------------


def _run_trial(study: optuna.Study, value: float, end: str) -> None:
    trial = study.ask()
    x = trial.suggest_float("x", 0, 1)
    trial.suggest_int("n", 1, 9)
    trial.set_user_attr("record", {"x": x, "value": value})
    if end == "complete":
        study.tell(trial, value + x)
    elif end == "fail":
        study.tell(trial, state=TrialState.FAIL)
    elif end == "prune":
        study.tell(trial, state=TrialState.PRUNED)
    else:  # left running (a trial of this process, or a dead worker's), its updates
        flush_trial(trial)  # written: other readers see them (unwritten, only this one does)


_OPS = st.lists(st.one_of(
    st.tuples(st.just("trial"), st.integers(0, 2), st.floats(-1, 1),
              st.sampled_from(["complete", "complete", "fail", "prune", "running"])),
    st.tuples(st.just("other"), st.integers(0, 2), st.floats(-1, 1), st.just("complete")),
    st.tuples(st.just("focus"), st.integers(0, 2), st.just(0.0), st.just("")),
    st.tuples(st.just("read"), st.integers(0, 2), st.just(0.0), st.just("")),
), max_size=40)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_every_read_gives_what_optunas_replay_gives(tmp_path_factory, ops):
    """Trials written by this process and by another writer, with the focus moving between
    studies: each study read through the compacting storage equals Optuna's replay."""
    path = tmp_path_factory.mktemp("replay") / "studies.journal"
    storage = BatchedJournalStorage(FileJournalBackend(path), compact_above=0)
    other = BatchedJournalStorage(FileJournalBackend(path))  # another worker
    names = [f"s{i}" for i in range(3)]
    mine = [optuna.create_study(study_name=n, storage=storage) for n in names]
    theirs = [optuna.load_study(study_name=n, storage=other) for n in names]
    for op, which, value, end in ops:
        if op == "trial":
            _run_trial(mine[which], value, end)
        elif op == "other":
            _run_trial(theirs[which], value, end)
        elif op == "focus":
            focus_replay(mine[which])
        else:
            _same_as_optuna(storage, path, [names[which]])
    _same_as_optuna(storage, path, names)


def test_the_other_studies_keep_number_and_state_only(tmp_path):
    path = tmp_path / "studies.journal"
    storage = BatchedJournalStorage(FileJournalBackend(path), compact_above=0)
    a, b = (optuna.create_study(study_name=n, storage=storage) for n in ("a", "b"))
    for value in range(5):
        _run_trial(a, value, "complete")
    _run_trial(a, 9, "running")  # a running trial is kept in full
    focus_replay(b)
    _run_trial(b, 1, "complete")
    trials = storage._replay_result._trials
    kinds = [type(trials[i]).__name__ for i in sorted(trials)]
    assert kinds == ["Settled"] * 5 + ["FrozenTrial"] * 2
    assert [trials[i].number for i in range(5)] == list(range(5))
    assert {trials[i].state for i in range(5)} == {TrialState.COMPLETE}
    # a's trial finishing later (its worker's tell) is compacted as it is read
    running = storage.get_all_trials(a._study_id)[-1]  # replays: a is read in full
    assert _settled(storage) == 0 and running.state == TrialState.RUNNING
    focus_replay(b)
    assert _settled(storage) == 5
    other = BatchedJournalStorage(FileJournalBackend(path))
    other.set_trial_state_values(running._trial_id, TrialState.FAIL)
    storage.get_all_trials(b._study_id)  # syncs
    assert _settled(storage) == 6
    _same_as_optuna(storage, path, ["a", "b"])


def test_an_update_of_a_compacted_trial_is_refused_as_optuna_refuses_it(tmp_path):
    storage = BatchedJournalStorage(FileJournalBackend(tmp_path / "j"), compact_above=0)
    a, b = (optuna.create_study(study_name=n, storage=storage) for n in ("a", "b"))
    _run_trial(a, 1, "complete")
    focus_replay(b)
    first = storage._replay_result._study_id_to_trial_ids[a._study_id][0]
    assert isinstance(storage._replay_result._trials[first], Settled)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError, match="Trial#0 has already finished"):
        storage.set_trial_state_values(first, TrialState.FAIL)


def test_the_running_trials_kept_updates_survive_a_new_replay(tmp_path):
    """This process's running trial keeps its parameters in memory until it ends; a read of
    a compacted study replays the journal and must not lose them."""
    path = tmp_path / "studies.journal"
    storage = BatchedJournalStorage(FileJournalBackend(path), compact_above=0)
    a, b = (optuna.create_study(study_name=n, storage=storage) for n in ("a", "b"))
    _run_trial(a, 1, "complete")
    focus_replay(b)
    trial = b.ask()
    trial.suggest_float("x", 0, 1)  # kept, not written
    trial.set_user_attr("note", "kept")
    assert _settled(storage) == 1
    a.get_trials()  # a is compacted: replays the journal
    assert _settled(storage) == 0
    running = storage.get_trial(trial._trial_id)
    assert set(running.params) == {"x"} and running.user_attrs["note"] == "kept"
    b.tell(trial, 0.5)
    _same_as_optuna(storage, path, ["a", "b"])


def test_below_compact_above_nothing_is_compacted(tmp_path):
    storage = BatchedJournalStorage(FileJournalBackend(tmp_path / "j"), compact_above=10)
    a, b = (optuna.create_study(study_name=n, storage=storage) for n in ("a", "b"))
    for value in range(9):
        _run_trial(a, value, "complete")
    focus_replay(b)
    assert _settled(storage) == 0
    _run_trial(b, 1, "complete")  # the tenth trial: a's are compacted as trials finish
    focus_replay(b)
    assert _settled(storage) == 9


def test_compact_refuses_a_study_it_compacted(tmp_path):
    replay = CompactReplay("w-", compact_above=0)
    replay.compacted.add(3)
    with pytest.raises(ValueError, match=r"studies \[3\] are compacted"):
        replay.compact({3})
    with pytest.raises(RuntimeError, match="replays the journal again"):
        replay.get_all_trials(3, None)


def test_a_compacted_trial_costs_a_fraction_of_a_full_one(tmp_path):
    """Memory of the replay per trial of a study not worked on, by tracemalloc: a full
    trial with a foldwise-sized record against a compacted one."""
    path = tmp_path / "studies.journal"
    writer = BatchedJournalStorage(FileJournalBackend(path))
    study = optuna.create_study(study_name="done", storage=writer,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    record = {f"metric_{i}": float(i) / 7 for i in range(20)}
    for value in range(1500):
        trial = study.ask()
        trial.suggest_int("fast", 2, 40)
        trial.suggest_int("slow", 41, 200)
        trial.set_user_attr("record", record)
        study.tell(trial, float(value))
    optuna.create_study(study_name="now", storage=writer)

    def replay_bytes(compact: bool) -> float:
        gc.collect()
        tracemalloc.start()
        try:
            storage = BatchedJournalStorage(FileJournalBackend(path), compact_above=0)
            if compact:
                storage.keep_full({storage.get_study_id_from_name("now")})
            gc.collect()
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        del storage
        return held / 1500

    full, compacted = replay_bytes(False), replay_bytes(True)
    assert compacted < 400 < full / 4, (full, compacted)


# --- optimize: the same study with and without compaction -----------------------------------


def test_a_study_optimized_with_the_replay_compacted_is_the_same(tmp_path, monkeypatch):
    data = make_data()
    original = CompactReplay.compact

    def run(directory, compact_above):
        monkeypatch.setattr(_replay, "COMPACT_ABOVE", compact_above)
        compacted = []

        def spy(replay, keep_full):
            original(replay, keep_full)
            compacted.append(sum(isinstance(t, Settled) for t in replay._trials.values()))

        monkeypatch.setattr(CompactReplay, "compact", spy)
        result = optimize(sma_crossover, data, {"fast": Int(2, 20), "slow": Int(21, 60)},
                          WalkForward(train=120, test=30), n_trials=12, seed=4, study="s",
                          storage=f"journal:{directory}/studies.journal", cache=directory,
                          show_progress=False)
        return result, compacted

    compacted, settled = run(tmp_path / "a", 0)
    full, none_settled = run(tmp_path / "b", 10**9)
    assert len(compacted.folds) >= 3
    assert settled[-1] >= 12 * (len(compacted.folds) - 1)  # every earlier fold's trials
    assert not any(none_settled)
    columns = ["fold", "trial", "state", "value", "params", "train", "test"]
    pd.testing.assert_frame_equal(compacted.trials[columns], full.trials[columns])
    pd.testing.assert_frame_equal(compacted.folds, full.folds)
    pd.testing.assert_series_equal(compacted.oos_equity, full.oos_equity)


def test_a_new_parameter_is_checked_against_a_compacted_trials_distribution(tmp_path):
    """Optuna refuses a parameter whose distribution is incompatible with the one an earlier
    trial of the study has; compacted, that earlier trial still refuses it."""
    storage = BatchedJournalStorage(FileJournalBackend(tmp_path / "j"), compact_above=0)
    a, b = (optuna.create_study(study_name=n, storage=storage) for n in ("a", "b"))
    _run_trial(a, 1, "complete")
    _run_trial(a, 2, "complete")
    focus_replay(b)
    assert _settled(storage) == 2
    settled = storage._replay_result._trials[0]
    assert settled.distributions is storage._replay_result._trials[1].distributions  # shared
    other = BatchedJournalStorage(FileJournalBackend(tmp_path / "j"))  # another worker
    late = other.create_new_trial(a._study_id)
    with pytest.raises(ValueError, match="Cannot set different distribution kind"):
        storage.set_trial_param(late, "x", 0, optuna.distributions.CategoricalDistribution(
            ["u", "v"]))
