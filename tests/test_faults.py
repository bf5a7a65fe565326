"""Faults are not failures: a fault of the machine stops the run and costs no trial.

Real faults: a full disk (a small tmpfs, in a user + mount namespace), a read-only bind
mount, a truncated and a bit-flipped cache index, an evicted and a damaged artifact. After
each fault is removed, the same optimize call completes every fold with exactly
``n_trials`` finished trials, none of them failed, and ``foldwise show`` works.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import foldwise
from foldwise.cli import main
from foldwise.errors import (
    CacheArgumentError,
    CacheCorruptedError,
    MachineFaultError,
    mark_raised_by_strategy,
)
from foldwise.optimizer._faults import machine_fault
from foldwise.records import FailureKind, read_trial
from foldwise.storage import WORKER_ATTR, current_worker

from . import _fault_script as script

SCRIPT = Path(__file__).with_name("_fault_script.py")
N_TRIALS = 6


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- telling faults from failures ------------------------------------------------------------


@pytest.mark.parametrize(("exc", "cause"), [
    (OSError(errno.ENOSPC, "No space left on device", "/x/a.parquet"), "the disk is full"),
    (OSError(errno.EROFS, "Read-only file system", "/x"), "read-only"),
    (PermissionError(errno.EACCES, "Permission denied", "/x"), "permission denied"),
    (sqlite3.OperationalError("database or disk is full"), "the disk is full"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
    (sqlite3.DatabaseError("database disk image is malformed"), "damaged"),
    (sqlite3.OperationalError("Could not decode to UTF-8 column 'metrics' with text '{'"),
     "verify --repair"),
    (CacheCorruptedError("index damaged"), "verify --repair"),
    (MemoryError(), "out of memory"),
])
def test_faults_of_the_machine_are_named_with_their_fix(exc, cause):
    fault = machine_fault(exc, "fold 1, trial 2")
    assert isinstance(fault, MachineFaultError)
    assert cause in str(fault)
    assert "fold 1, trial 2" in str(fault) and "No trial was counted" in str(fault)
    if isinstance(exc, OSError):
        assert exc.filename in str(fault)


@pytest.mark.parametrize("exc", [ValueError("bad"), KeyError("k"),
                                 CacheArgumentError("a wrong call"), RuntimeError("defect")])
def test_what_is_not_a_fault_of_the_machine_passes_unchanged(exc):
    assert machine_fault(exc) is None


def test_what_the_strategy_raised_is_never_a_fault():
    assert machine_fault(mark_raised_by_strategy(OSError(errno.ENOSPC, "full", "/x"))) is None


def _reads_a_file(data, fast=10, slow=50):
    if fast % 3 == 0:  # the strategy's own OSError: its failure, not the machine's
        raise FileNotFoundError(errno.ENOENT, "No such file", "/nonexistent/model.bin")
    return foldwise.examples.sma_crossover(data, fast=fast, slow=slow)


def test_an_oserror_of_the_strategy_is_its_failure_and_the_study_goes_on(tmp_path):
    result = foldwise.optimize(_reads_a_file, script.data(), script.SPACE, script.splitter(),
                               n_trials=N_TRIALS, study="own", cache=tmp_path,
                               storage=f"journal:{tmp_path}/s.journal", seed=1,
                               show_progress=False)
    trials = [t for fold in result.record.trials.values() for t in fold]
    failed = [t for t in trials if t.record.failure is not None]
    assert failed and all(t.record.failure.kind is FailureKind.STRATEGY for t in failed)
    assert all(t.record.failure.type == "FileNotFoundError" for t in failed)
    assert (result.folds["trials_complete"] + result.folds["trials_failed"] == N_TRIALS).all()


def test_a_fault_in_the_cache_releases_the_trial_and_stops(tmp_path, monkeypatch):
    """A write refused by the cache (an injected EACCES at the artifact write): the run
    stops with MachineFaultError; the trial is FAULT (not counted); the same call resumes."""
    from foldwise.cache import _artifacts

    real = _artifacts.ArtifactStore.write
    calls = {"n": 0}

    def refuse_the_third(self, key, result, positions=True):
        calls["n"] += 1
        if calls["n"] == 3:
            raise PermissionError(errno.EACCES, "Permission denied", str(self.location.where("packs")))
        return real(self, key, result, positions)

    monkeypatch.setattr(_artifacts.ArtifactStore, "write", refuse_the_third)
    storage = f"journal:{tmp_path}/s.journal"
    with pytest.raises(MachineFaultError, match="permission denied"):
        script.main_optimize(str(tmp_path), storage, N_TRIALS)
    released = [read_trial(t) for t in _all_trials(storage)
                if t.state == optuna.trial.TrialState.FAIL]
    assert [t.record.failure.kind for t in released] == [FailureKind.FAULT]
    monkeypatch.setattr(_artifacts.ArtifactStore, "write", real)
    result = script.main_optimize(str(tmp_path), storage, N_TRIALS)
    assert script.counts(storage, "faults") == ([N_TRIALS] * 4, [0] * 4)
    # the fold table tells the released trial from the strategy's failures
    assert result.folds["trials_failed"].sum() == 0
    assert result.folds["trials_rerun"].sum() == 1


def test_a_trial_this_process_left_running_is_run_again(tmp_path):
    """A trial left RUNNING by this very process (its release failed with the storage) is
    failed on the next call in the same process instead of waiting for it forever."""
    storage = f"journal:{tmp_path}/s.journal"
    script.main_optimize(str(tmp_path), storage, 2)
    opened = foldwise.storage.open_storage(foldwise.storage.parse_storage(storage))
    study = optuna.load_study(study_name="faults/fold-00", storage=opened)
    orphan = study.ask()
    orphan.set_user_attr(WORKER_ATTR, current_worker())
    script.main_optimize(str(tmp_path), storage, N_TRIALS)
    assert script.counts(storage, "faults") == ([N_TRIALS] * 4, [0] * 4)
    left = study.trials[orphan.number]
    assert read_trial(left).record.failure.kind is FailureKind.WORKER_DIED


def _all_trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    opened = foldwise.storage.open_storage(foldwise.storage.parse_storage(storage))
    return [t for name in optuna.get_all_study_names(opened) if "/fold-" in name
            for t in optuna.load_study(study_name=name, storage=opened).get_trials()]


# --- damage to the cache, in this process ---------------------------------------------------


def _show(root: Path, storage: str, capsys) -> str:
    capsys.readouterr()
    assert main(["show", "faults", "--dir", str(root), "--storage", storage]) == 0
    return capsys.readouterr().out


def _resume_after(fault, tmp_path, capsys, *, repair: bool = False) -> None:
    """Run half the study, apply ``fault``, run the whole study (repairing the cache if the
    run stops on the fault and ``repair``), then check the budget and ``show``."""
    storage = f"journal:{tmp_path}/s.journal"
    script.main_optimize(str(tmp_path), storage, N_TRIALS // 2)
    fault(foldwise.BacktestCache(tmp_path))
    stopped = None
    try:
        script.main_optimize(str(tmp_path), storage, N_TRIALS)
    except MachineFaultError as exc:
        stopped = str(exc)
    if stopped is not None:  # the damage stopped the run: repair as the message says
        assert repair, stopped
        assert "verify --repair" in stopped
        assert main(["cache", "verify", "--repair", "--dir", str(tmp_path)]) == 0
        script.main_optimize(str(tmp_path), storage, N_TRIALS)
    assert script.counts(storage, "faults") == ([N_TRIALS] * 4, [0] * 4)
    assert "verdict" in _show(tmp_path, storage, capsys)


def _truncate_index(cache: foldwise.BacktestCache) -> None:
    cache.close()
    path = cache.directory / "index.sqlite"
    with sqlite3.connect(path) as connection:  # fold the WAL in, so the file holds the rows
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.truncate(path, path.stat().st_size // 2)


def _flip_bytes(cache: foldwise.BacktestCache) -> None:
    cache.close()
    path = cache.directory / "index.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(path.read_bytes())
    for offset in range(len(raw) // 3, len(raw), len(raw) // 7):
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def _evict_an_artifact(cache: foldwise.BacktestCache) -> None:
    for row in cache.index.rows(kind="full")[:3]:
        (cache.directory / row.artifact).unlink()


def _damage_an_artifact(cache: foldwise.BacktestCache) -> None:
    for row in cache.index.rows(kind="full")[:3]:
        path = cache.directory / row.artifact
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))


@pytest.mark.parametrize("fault", [_truncate_index, _flip_bytes],
                         ids=["truncated-index", "bit-flipped-index"])
def test_a_damaged_index_is_repaired_and_the_study_completes(fault, tmp_path, capsys):
    _resume_after(fault, tmp_path, capsys, repair=True)


@pytest.mark.parametrize("fault", [_evict_an_artifact, _damage_an_artifact],
                         ids=["evicted-artifact", "damaged-artifact"])
def test_a_missing_or_damaged_artifact_is_run_again(fault, tmp_path, capsys):
    _resume_after(fault, tmp_path, capsys)


def test_show_works_after_the_whole_cache_is_gone(tmp_path, capsys):
    storage = f"journal:{tmp_path}/s.journal"
    script.main_optimize(str(tmp_path), storage, N_TRIALS)
    before = _show(tmp_path, storage, capsys)
    assert main(["cache", "clear", "--yes", "--include-pinned", "--dir", str(tmp_path)]) == 0
    after = _show(tmp_path, storage, capsys)
    assert after.startswith(before.rstrip("\n"))  # the same report, and one line more
    assert after.rstrip("\n").endswith("were missing from the cache and were re-created "
                                        "from the study.")


# --- real faults of the file system, in a user + mount namespace -----------------------------


def _namespaces() -> None:
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True, text=True, check=False) if \
        Path("/usr/bin/unshare").exists() or Path("/bin/unshare").exists() else None
    if probe is None or probe.returncode != 0:
        reason = "unshare is not installed" if probe is None else probe.stderr.strip()
        pytest.skip(f"no user + mount namespace to mount a tmpfs in: {reason}")


def _in_namespace(shell: str) -> list[dict]:
    """Run ``shell`` (with $PY and $SCRIPT set) in a user + mount namespace; return the JSON
    lines the study runs printed."""
    env = {**os.environ, "PY": sys.executable, "SCRIPT": str(SCRIPT),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPT.parent.parent),
                                                       os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(["unshare", "-rm", "sh", "-ec", shell], capture_output=True,
                          text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout + done.stderr[-3000:]
    return lines


@pytest.mark.slow
@pytest.mark.parametrize(("size", "journal_apart"), [
    ("48k", False), ("96k", False), ("240k", False), ("700k", False), ("8k", True),
    ("32k", True)])
def test_a_full_disk_stops_the_run_and_costs_no_trial(size, journal_apart, tmp_path):
    """The cache and the journal on a small tmpfs (or only the journal): the run stops with
    MachineFaultError naming the full disk; after the tmpfs grows, the same call completes
    with exactly n_trials per fold, none failed, and ``foldwise show`` works."""
    _namespaces()
    disk = tmp_path / "disk"
    disk.mkdir()
    root = tmp_path / "root" if journal_apart else disk
    root.mkdir(exist_ok=True)
    storage = f"journal:{disk}/s.journal"
    lines = _in_namespace(f"""
        mount -t tmpfs -o size={size} tmpfs {disk}
        "$PY" "$SCRIPT" {root} {storage} {N_TRIALS}
        mount -o remount,size=64m {disk}
        "$PY" "$SCRIPT" {root} {storage} {N_TRIALS}
        cd {tmp_path} && "$PY" -m foldwise.cli show faults --dir {root} --storage {storage} \
            | grep '^overfitting: PBO' | head -1 | sed 's/^/{{"show": "/; s/$/"}}/'
        """)
    stopped, resumed, shown = lines
    assert stopped["status"] == "fault", stopped
    assert "the disk is full" in stopped["message"]
    assert stopped["failed"] is None or not any(stopped["failed"])
    assert resumed == {"status": "ok", "finished": [N_TRIALS] * 4, "failed": [0] * 4}
    assert shown["show"].startswith("overfitting: PBO")


@pytest.mark.slow
def test_a_read_only_cache_stops_the_run_and_can_still_be_read(tmp_path):
    """Half the study, then the foldwise directory becomes a read-only mount: optimize stops
    with MachineFaultError and counts nothing, ``foldwise show`` still reads the study; once
    writable again, the same call completes exactly."""
    _namespaces()
    root, journal = tmp_path / "root", tmp_path / "journal"
    root.mkdir()
    journal.mkdir()
    storage = f"journal:{journal}/s.journal"
    lines = _in_namespace(f"""
        "$PY" "$SCRIPT" {root} {storage} {N_TRIALS // 2}
        mount --bind {root} {root}
        mount -o remount,ro,bind {root} {root}
        "$PY" "$SCRIPT" {root} {storage} {N_TRIALS}
        cd {tmp_path} && "$PY" -m foldwise.cli show faults --dir {root} --storage {storage} \
            | grep '^overfitting: PBO' | head -1 | sed 's/^/{{"show": "/; s/$/"}}/'
        umount {root}
        "$PY" "$SCRIPT" {root} {storage} {N_TRIALS}
        """)
    first, refused, shown, completed = lines
    assert first["status"] == "ok"
    assert refused["status"] == "fault", refused
    assert "read-only" in refused["message"].lower()
    assert refused["finished"] == [N_TRIALS // 2] * 4 and refused["failed"] == [0] * 4
    assert shown["show"].startswith("overfitting: PBO")
    assert completed == {"status": "ok", "finished": [N_TRIALS] * 4, "failed": [0] * 4}


def test_a_journal_with_a_bad_middle_line_is_repaired_and_the_study_completes(tmp_path,
                                                                               capsys):
    journal = tmp_path / "s.journal"
    storage = f"journal:{journal}"
    script.main_optimize(str(tmp_path), storage, N_TRIALS // 2)
    lines = journal.read_bytes().split(b"\n")
    middle = len(lines) // 2
    lines[middle] = b"{" + b"x" * (len(lines[middle]) - 1)  # damaged, same length
    journal.write_bytes(b"\n".join(lines))
    with pytest.raises(MachineFaultError, match=rf"line {middle + 1}.*foldwise repair"):
        script.main_optimize(str(tmp_path), storage, N_TRIALS)
    capsys.readouterr()
    assert main(["repair", "faults", "--storage", storage]) == 0
    assert "re-run" in capsys.readouterr().out
    script.main_optimize(str(tmp_path), storage, N_TRIALS)
    assert script.counts(storage, "faults") == ([N_TRIALS] * 4, [0] * 4)
    assert "verdict" in _show(tmp_path, storage, capsys)
