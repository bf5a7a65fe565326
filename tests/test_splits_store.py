"""Fold ids across processes and changes, and the fold store on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import foldwise
from foldwise.errors import FoldSetMismatchError, FoldStoreError, SplitError
from foldwise.splits import CombinatorialPurgedKFold, FoldStore, PurgedKFold, WalkForward

# --- ids -------------------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import foldwise
    from foldwise.splits import CombinatorialPurgedKFold, PurgedKFold, WalkForward
    data = foldwise.datasets.load_goog()
    out = {
        "wf": WalkForward("3Y", "6M", purge=5).folds(data).fold_ids,
        "kfold": PurgedKFold(4, embargo=0.01).folds(np.arange(100.0)).fold_ids,
        "cpcv": CombinatorialPurgedKFold(5, 2, purge=2).folds(data.frame()).fold_ids,
        "matplotlib_loaded": "matplotlib" in sys.modules,
    }
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_fold_ids_are_the_same_in_another_process():
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                            check=True, env=env, timeout=120)
    child = json.loads(result.stdout)
    data = foldwise.datasets.load_goog()
    assert child["wf"] == WalkForward("3Y", "6M", purge=5).folds(data).fold_ids
    assert child["kfold"] == PurgedKFold(4, embargo=0.01).folds(np.arange(100.0)).fold_ids
    assert child["cpcv"] == CombinatorialPurgedKFold(5, 2, purge=2).folds(data.frame()).fold_ids
    # the splitters draw only when asked: importing and splitting loads no matplotlib
    assert child["matplotlib_loaded"] is False


@settings(max_examples=60, deadline=None)
@given(values=arrays(np.float64, st.integers(20, 60),
                     elements=st.floats(-1e6, 1e6, allow_nan=False)),
       position=st.integers(0, 10**6), delta=st.floats(1e-3, 10))
def test_any_change_to_the_data_changes_every_fold_id(values, position, delta):
    splitter = WalkForward(10, 5, purge=1)
    before = splitter.folds(values)
    changed = values.copy()
    changed[position % len(values)] += delta
    after = splitter.folds(changed)
    assert set(before.fold_ids).isdisjoint(after.fold_ids)
    assert before.id != after.id
    assert splitter.folds(values.copy()).fold_ids == before.fold_ids


def test_ids_differ_between_splitters_with_the_same_folds():
    X = np.zeros(30)
    a = PurgedKFold(3).folds(X)
    b = CombinatorialPurgedKFold(3, 1).folds(X)
    assert [f.test.tolist() for f in a] == [f.test.tolist() for f in b]
    assert set(a.fold_ids).isdisjoint(b.fold_ids)


def test_limits_are_not_part_of_the_ids():
    X = np.zeros(30)
    assert (CombinatorialPurgedKFold(5, 2).folds(X).fold_ids
            == CombinatorialPurgedKFold(5, 2, max_splits=10).folds(X).fold_ids)


def test_ids_are_type_exact():
    X = np.zeros(300)
    assert WalkForward(100, 50, embargo=0).folds(X).id != WalkForward(100, 50, embargo=0.0).folds(X).id


# --- the store -------------------------------------------------------------------------------


@pytest.fixture
def data():
    return foldwise.datasets.load_goog()


def test_file_is_compact_json_with_the_metadata(tmp_path, data):
    splitter = WalkForward("2Y", "6M", purge=5)
    folds = splitter.folds(data, store=FoldStore(tmp_path), name="goog-sma")
    path = tmp_path / "folds" / "goog-sma.json"
    record = json.loads(path.read_text())
    assert record["data"] == {"content_hash": data.content_hash, "n_dates": 2148,
                              "first_date": "2004-08-19T00:00:00",
                              "last_date": "2013-03-01T00:00:00"}
    assert record["splitter"]["repr"] == repr(splitter)
    assert record["splitter"]["config"]["params"]["train"] == "2Y"
    assert record["fold_set_id"] == folds.id
    first = record["folds"][0]
    assert first["fold_id"] == folds[0].fold_id
    assert first["train"] == [[0, int(folds[0].train[-1]) + 1]]
    assert first["purged"] == [[int(folds[0].purged[0]), int(folds[0].purged[-1]) + 1]]
    assert path.stat().st_size < 10_000  # runs, not lists of positions
    assert not [p for p in (tmp_path / "folds").iterdir() if p.name.startswith(".")]


def test_reuse_reads_the_stored_definition(tmp_path, data):
    store = FoldStore(tmp_path)
    splitter = PurgedKFold(4, purge=3)
    first = splitter.folds(data, store=store, name="s")
    modified = store.path("s").stat().st_mtime_ns
    again = splitter.folds(data, store=store, name="s")
    assert again == first
    assert again.name == "s"
    assert store.path("s").stat().st_mtime_ns == modified  # not rewritten
    assert store.names() == ["s"]
    assert "s" in store


def test_default_name_is_content_addressed(tmp_path, data):
    store = FoldStore(tmp_path)
    folds = WalkForward(500, 250).folds(data, store=store)
    assert store.names() == [f"walkforward-{folds.id}"]
    WalkForward(400, 250).folds(data, store=store)
    assert len(store.names()) == 2


def test_default_root_follows_the_environment(tmp_path, monkeypatch, data):
    monkeypatch.setenv("FOLDWISE_DIR", str(tmp_path / "elsewhere"))
    WalkForward(500, 250).folds(data, store=FoldStore(), name="x")
    assert (tmp_path / "elsewhere" / "folds" / "x.json").is_file()


def test_mismatch_on_other_data_says_what_changed_and_how_to_fix(tmp_path, data):
    store = FoldStore(tmp_path)
    splitter = WalkForward("2Y", "6M")
    splitter.folds(data, store=store, name="study")
    longer_history = data.islice(0, 2000)
    with pytest.raises(FoldSetMismatchError) as info:
        splitter.folds(longer_history, store=store, name="study")
    message = str(info.value)
    assert "built with other data" in message
    assert data.content_hash in message
    assert longer_history.content_hash in message
    assert "2148 bars 2004-08-19..2013-03-01 -> 2000 bars 2004-08-19..2012-07-26" in message
    assert "name='study-2'" in message
    assert ".delete('study')" in message
    assert str(store.path("study")) in message


def test_mismatch_on_same_dates_other_values(tmp_path, data):
    store = FoldStore(tmp_path)
    WalkForward(500, 250).folds(data, store=store, name="study")
    close = data.frame("close") * 1.01
    with pytest.raises(FoldSetMismatchError, match=r"same dates, other values"):
        WalkForward(500, 250).folds(foldwise.MarketData.from_frame(close), store=store,
                                    name="study")


def test_mismatch_on_another_splitter_names_the_settings(tmp_path, data):
    store = FoldStore(tmp_path)
    WalkForward(500, 250, purge=5).folds(data, store=store, name="study")
    with pytest.raises(FoldSetMismatchError) as info:
        WalkForward(400, 250, purge=5).folds(data, store=store, name="study")
    message = str(info.value)
    assert "built with another splitter" in message
    assert "(train: 500 -> 400)" in message
    with pytest.raises(FoldSetMismatchError, match=r"splitter: WalkForward -> PurgedKFold"):
        PurgedKFold(5).folds(data, store=store, name="study")


def test_delete_then_rebuild(tmp_path, data):
    store = FoldStore(tmp_path)
    WalkForward(500, 250).folds(data, store=store, name="study")
    assert store.delete("study")
    assert not store.delete("study")
    rebuilt = WalkForward(400, 250).folds(data, store=store, name="study")
    assert rebuilt.splitter.startswith("WalkForward(train=400")


@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "not valid JSON"),
    ('{"format": "something else"}', "not a foldwise fold set"),
    ("[1, 2]", "not a foldwise fold set"),
])
def test_damaged_files_are_refused_without_running_anything(tmp_path, data, content, why):
    store = FoldStore(tmp_path)
    store.path("study").parent.mkdir(parents=True)
    store.path("study").write_text(content)
    with pytest.raises(FoldStoreError, match=why) as info:
        WalkForward(500, 250).folds(data, store=store, name="study")
    assert ".delete('study')" in str(info.value)


def test_hand_edited_runs_are_refused(tmp_path, data):
    store = FoldStore(tmp_path)
    WalkForward(500, 250).folds(data, store=store, name="study")
    record = json.loads(store.path("study").read_text())
    record["folds"][0]["train"] = [[0, 100000]]
    store.path("study").write_text(json.dumps(record))
    with pytest.raises(FoldStoreError, match="runs past the data"):
        WalkForward(500, 250).folds(data, store=store, name="study")
    record["folds"][0]["train"] = [[10, 5]]
    store.path("study").write_text(json.dumps(record))
    with pytest.raises(FoldStoreError, match="malformed"):
        WalkForward(500, 250).folds(data, store=store, name="study")


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 201, 5])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(FoldStoreError, match="letters, digits"):
        FoldStore(tmp_path).path(name)


def test_name_without_store_is_an_error(data):
    with pytest.raises(SplitError, match=r"store=FoldStore\(\)"):
        WalkForward(500, 250).folds(data, name="study")


def test_of_two_processes_creating_one_name_the_second_is_compared(tmp_path, data, monkeypatch):
    """Another process stores the name between our read and our write: we do not overwrite
    its folds, we compare against them."""
    store = FoldStore(tmp_path)
    other = WalkForward(400, 250).folds(data)
    real_read = FoldStore.read
    calls = []

    def read_then_race(self, name):
        calls.append(name)
        if len(calls) == 1:
            assert self._create(name, other)  # the other process wins the race
            return None
        return real_read(self, name)

    monkeypatch.setattr(FoldStore, "read", read_then_race)
    with pytest.raises(FoldSetMismatchError, match=r"train: 400 -> 500"):
        WalkForward(500, 250).folds(data, store=store, name="study")
    monkeypatch.undo()
    assert WalkForward(400, 250).folds(data, store=store, name="study") == other
    assert not [p for p in (tmp_path / "folds").iterdir() if p.name != "study.json"]


def test_a_set_already_built_is_stored_as_it_is(tmp_path):
    data = foldwise.datasets.load_goog()
    splitter = WalkForward(train=500, test=250)
    built = splitter.folds(data)
    store = FoldStore(tmp_path)
    stored = store.folds(splitter, data, "given", built=built)
    assert stored.id == built.id and stored.name == "given"
    assert [f.fold_id for f in store.folds(splitter, data, "given")] == built.fold_ids
    other = WalkForward(train=400, test=250).folds(data)
    with pytest.raises(SplitError, match="not the folds of"):
        store.folds(splitter, data, "wrong", built=other)
