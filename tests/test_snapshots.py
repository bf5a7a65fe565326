"""Read models of a study: the snapshot of its records beside the journal, and the
statistics a reader computed (foldwise.optimizer._snapshots).

What must hold: a reader gets exactly what replaying the journal gives, never a stale
study (any change of the journal's bytes invalidates a snapshot; any change of the study's
content or of foldwise's code invalidates kept statistics), and a read model that is
missing, damaged or cannot be written only costs the work it would have saved.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import foldwise
from foldwise.aggregate import _result as result_module
from foldwise.cache import BacktestCache
from foldwise.examples import sma_crossover
from foldwise.optimizer import _snapshots
from foldwise.optimizer._snapshots import (
    STATISTICS_DIR,
    StatisticsFile,
    read_snapshot,
    snapshot_path,
)
from foldwise.optimizer._studies import read_study
from foldwise.storage import open_storage, parse_storage

DATA = foldwise.datasets.load_goog().islice(0, 900)
SPACE = {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(40, 120)}
SPLITTER = foldwise.WalkForward(train=400, test=150)


def optimize(directory: Path, n_trials: int = 6, study: str = "snap") -> foldwise.WalkForwardResult:
    return foldwise.optimize(sma_crossover, DATA, SPACE, SPLITTER, n_trials=n_trials, seed=3,
                             study=study, storage=journal_of(directory),
                             cache=BacktestCache(directory), show_progress=False)


def journal_of(directory: Path) -> str:
    return f"journal:{directory}/studies.journal"


def replayed(directory: Path, study: str = "snap"):
    """The study's record as the journal's replay gives it (no snapshot involved)."""
    spec = parse_storage(journal_of(directory))
    return read_study(study, open_storage(spec, read_only=True), str(spec))


def load(directory: Path, study: str = "snap") -> foldwise.WalkForwardResult:
    return foldwise.load_result(study, storage=journal_of(directory), cache=directory)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    directory = tmp_path_factory.mktemp("snapshots") / "fw"
    optimize(directory)
    return directory


@pytest.fixture
def study_dir(finished, tmp_path):
    copy = tmp_path / "fw"
    shutil.copytree(finished, copy)
    return copy


def test_optimize_writes_a_snapshot_that_equals_the_replay(study_dir):
    spec = parse_storage(journal_of(study_dir))
    path = snapshot_path(study_dir / "studies.journal", "snap")
    assert path.is_file()
    from_snapshot = read_snapshot(spec, "snap")
    from_journal = replayed(study_dir)
    assert from_snapshot is not None
    assert from_snapshot.to_text() == from_journal.to_text()
    assert from_snapshot.location == from_journal.location
    assert from_snapshot.digest() == from_journal.digest()  # stored digest = computed one
    # the reader's tables equal those of a reader without the snapshot
    with_snapshot = load(study_dir)
    path.unlink()
    without = load(study_dir)
    pd.testing.assert_frame_equal(with_snapshot.folds, without.folds)
    pd.testing.assert_frame_equal(with_snapshot.trials, without.trials)
    assert path.is_file()  # the reader that replayed wrote it again


def test_any_append_to_the_journal_makes_the_snapshot_stale(study_dir):
    spec = parse_storage(journal_of(study_dir))
    path = snapshot_path(study_dir / "studies.journal", "snap")
    old = path.read_bytes()
    assert read_snapshot(spec, "snap") is not None
    # another study in the same journal: this study is unchanged, but its snapshot's key is
    optimize(study_dir, n_trials=2, study="other")
    assert read_snapshot(spec, "snap") is None
    assert load(study_dir).record.to_text() == replayed(study_dir).to_text()
    # more trials of this study; the snapshot from before them put back
    optimize(study_dir, n_trials=9)
    path.write_bytes(old)
    assert read_snapshot(spec, "snap") is None
    result = load(study_dir)
    assert (result.folds["trials_complete"] == 9).all()
    assert result.record.to_text() == replayed(study_dir).to_text()
    assert read_snapshot(spec, "snap").to_text() == result.record.to_text()


def test_a_changed_journal_of_the_same_length_is_not_read_from_the_snapshot(study_dir):
    journal = study_dir / "studies.journal"
    spec = parse_storage(journal_of(study_dir))
    assert read_snapshot(spec, "snap") is not None
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]  # same bytes, another order
    journal.write_bytes(b"".join(lines))
    assert read_snapshot(spec, "snap") is None


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other study", "other version"])
def test_a_damaged_or_foreign_snapshot_is_replaced(study_dir, damage):
    path = snapshot_path(study_dir / "studies.journal", "snap")
    text = path.read_text()
    if damage == "garbage":
        path.write_bytes(b"\x00not json")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    else:
        stored = json.loads(text)
        if damage == "other study":
            stored["study"] = "another"
        else:
            stored["key"]["foldwise"] = "0.0.0"
        path.write_text(json.dumps(stored))
    assert read_snapshot(parse_storage(journal_of(study_dir)), "snap") is None
    result = load(study_dir)
    assert result.record.to_text() == replayed(study_dir).to_text()
    assert json.loads(path.read_text())["study"] == "snap"  # written again, whole


def test_no_snapshot_from_a_read_that_other_appends_interleaved(study_dir, monkeypatch):
    path = snapshot_path(study_dir / "studies.journal", "snap")
    path.unlink()
    real = _snapshots.journal_bytes_read
    monkeypatch.setattr(_snapshots, "journal_bytes_read", lambda storage: real(storage) - 1)
    from foldwise.optimizer import _studies
    monkeypatch.setattr(_studies, "journal_bytes_read", _snapshots.journal_bytes_read)
    load(study_dir)
    assert not path.exists()


def test_a_snapshot_that_cannot_be_written_costs_nothing_but_time(study_dir, monkeypatch):
    path = snapshot_path(study_dir / "studies.journal", "snap")
    path.unlink()

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_snapshots, "atomic_path", refuse)
    result = load(study_dir)
    assert not path.exists()
    assert result.record.to_text() == replayed(study_dir).to_text()
    assert result.overfitting()["n_configurations"] > 1


def test_delete_study_removes_its_snapshot(study_dir):
    path = snapshot_path(study_dir / "studies.journal", "snap")
    assert path.is_file()
    foldwise.delete_study("snap", storage=journal_of(study_dir), cache=study_dir)
    assert not path.exists()


# --- kept statistics -------------------------------------------------------------------------


def test_overfitting_is_computed_once_per_study(study_dir, monkeypatch):
    first = load(study_dir).overfitting()
    files = list((study_dir / STATISTICS_DIR).iterdir())
    assert len(files) == 1

    def fail(*args, **kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr(result_module, "overfitting_summary", fail)
    again = load(study_dir).overfitting()
    assert json.dumps(again) == json.dumps(first)  # bit for bit, NaN included
    with pytest.raises(AssertionError, match="computed again"):
        load(study_dir).overfitting(n_splits=8)  # other arguments: another value


def test_kept_statistics_follow_the_study_and_the_code(study_dir, monkeypatch):
    before = load(study_dir).overfitting()
    optimize(study_dir, n_trials=10)  # the study changed: its statistics are computed again
    after = load(study_dir)
    assert after.overfitting() != before
    fresh = foldwise.load_result("snap", storage=journal_of(study_dir),
                                 cache=BacktestCache(study_dir))
    fresh.statistics = None  # computed, nothing kept
    assert json.dumps(fresh.overfitting()) == json.dumps(after.overfitting())
    # another foldwise (a changed source digest) does not read what this one kept
    monkeypatch.setattr(_snapshots, "_source_digest", "another build")
    calls = []
    real = result_module.overfitting_summary
    monkeypatch.setattr(result_module, "overfitting_summary",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    load(study_dir).overfitting()
    assert calls == [1]


def test_a_read_only_cache_reads_kept_statistics_and_writes_none(study_dir):
    kept = load(study_dir).overfitting()
    path = next((study_dir / STATISTICS_DIR).iterdir())
    record = load(study_dir).record
    reader = StatisticsFile(study_dir, record, writable=False)
    assert reader.get("overfitting", {"n_splits": 16, "max_configurations": None}) == kept
    path.unlink()
    reader.put("overfitting", {"n_splits": 16, "max_configurations": None}, kept)
    assert not path.exists()


def test_damaged_kept_statistics_are_computed_again(study_dir):
    kept = load(study_dir).overfitting()
    path = next((study_dir / STATISTICS_DIR).iterdir())
    path.write_text("{not json")
    assert json.dumps(load(study_dir).overfitting()) == json.dumps(kept)
    assert json.loads(path.read_text())["entries"]  # replaced by a whole file


def test_the_snooping_report_is_computed_once_and_reads_back_whole(study_dir, monkeypatch):
    from foldwise.aggregate._snooping import summary_lines

    first = load(study_dir).snooping(n_bootstrap=40)
    monkeypatch.setattr(result_module, "snooping_report",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("computed again")))
    again = load(study_dir).snooping(n_bootstrap=40)
    assert summary_lines(again) == summary_lines(first)
    pd.testing.assert_frame_equal(again.table, first.table, check_exact=True)
    assert json.dumps(again.to_json()) == json.dumps(first.to_json())
    with pytest.raises(AssertionError, match="computed again"):
        load(study_dir).snooping(n_bootstrap=41)
    with pytest.raises(AssertionError, match="computed again"):  # a Series is never kept
        load(study_dir).snooping(benchmark=pd.Series(0.0, index=DATA.index))


def test_show_reads_what_the_first_show_computed(study_dir, capsys):
    from foldwise.cli import main

    argv = ["show", "snap", "--dir", str(study_dir)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "overfitting: PBO" in first
    assert main(argv) == 0
    assert capsys.readouterr().out == first


# --- optimize keeps the report's statistics (keep_statistics) --------------------------------


def _computing_fails(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr(result_module, "overfitting_summary", fail)
    monkeypatch.setattr(result_module, "snooping_report", fail)


def _keeping(directory: Path, n_trials: int, **kwargs) -> foldwise.WalkForwardResult:
    return foldwise.optimize(sma_crossover, DATA, SPACE, SPLITTER, n_trials=n_trials, seed=3,
                             study="snap", storage=journal_of(directory),
                             cache=BacktestCache(directory), show_progress=False, **kwargs)


def test_optimize_keeps_what_show_shows_when_asked(study_dir, monkeypatch, capsys):
    """keep_statistics=True: optimize computes the overfitting statistics and the snooping
    section once; show then computes neither, and prints what a show computing them does."""
    from foldwise.cli import main

    shutil.rmtree(study_dir / STATISTICS_DIR, ignore_errors=True)
    kept = _keeping(study_dir, 8, keep_statistics=True)
    entries = json.loads(next((study_dir / STATISTICS_DIR).iterdir()).read_text())["entries"]
    assert len(entries) == 2  # overfitting() and snooping(n_bootstrap=REPORT_BOOTSTRAP)
    overfitting = kept.overfitting()
    computed = study_dir.parent / "computed"
    shutil.copytree(study_dir, computed)
    shutil.rmtree(computed / STATISTICS_DIR)
    argv = ["show", "snap", "--dir"]
    assert main([*argv, str(computed)]) == 0  # computes them
    expected = capsys.readouterr().out
    _computing_fails(monkeypatch)
    assert main([*argv, str(study_dir)]) == 0  # reads what optimize kept
    assert capsys.readouterr().out == expected
    assert json.dumps(load(study_dir).overfitting()) == json.dumps(overfitting)


@pytest.mark.parametrize(("keep", "after", "kept"), [
    (False, 0.0, False),  # never, however long the call
    (None, 0.0, True),  # automatic, a call longer than the threshold
    (None, 1e9, False),  # automatic, a shorter call
])
def test_optimize_keeps_statistics_after_a_long_call_only(study_dir, monkeypatch, keep, after,
                                                          kept):
    from foldwise.optimizer import _run

    shutil.rmtree(study_dir / STATISTICS_DIR, ignore_errors=True)
    monkeypatch.setattr(_run, "KEEP_STATISTICS_AFTER", after)
    _keeping(study_dir, 8, keep_statistics=keep)
    assert (study_dir / STATISTICS_DIR).exists() == kept


def test_optimize_refuses_a_keep_statistics_that_is_not_a_bool(study_dir):
    with pytest.raises(TypeError, match="keep_statistics must be None, True or False"):
        _keeping(study_dir, 6, keep_statistics="yes")
    with pytest.raises(TypeError, match="not 1"):
        _keeping(study_dir, 6, keep_statistics=1)
