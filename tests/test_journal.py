"""The journal backend and storage opening: torn tails, kernel locks, specs, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest
from optuna.storages import InMemoryStorage, JournalStorage, RDBStorage

import foldwise
from foldwise.errors import JournalCorruptedError, StorageError
from foldwise.storage import (
    FileJournalBackend,
    current_worker,
    is_dead,
    open_storage,
    parse_storage,
)


def test_appends_and_incremental_reads(tmp_path):
    backend = FileJournalBackend(tmp_path / "j.journal")
    backend.append_logs([{"op": 1}, {"op": 2}])
    assert list(backend.read_logs(0)) == [{"op": 1}, {"op": 2}]
    backend.append_logs([{"op": 3}])
    assert list(backend.read_logs(2)) == [{"op": 3}]
    other = FileJournalBackend(tmp_path / "j.journal")  # another reader from scratch
    assert [log["op"] for log in other.read_logs(1)] == [2, 3]


def test_a_torn_tail_is_skipped_by_readers_and_removed_by_the_next_writer(tmp_path, caplog):
    path = tmp_path / "j.journal"
    backend = FileJournalBackend(path)
    backend.append_logs([{"op": 1}])
    with open(path, "ab") as handle:
        handle.write(b'{"op": 2, "half')  # a writer killed mid-line
    assert list(FileJournalBackend(path).read_logs(0)) == [{"op": 1}]
    backend.append_logs([{"op": 3}])
    assert len(path.read_text().splitlines()) == 2
    assert list(FileJournalBackend(path).read_logs(0)) == [{"op": 1}, {"op": 3}]
    assert "torn last line" in caplog.text


def _journal_with_trials(path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=JournalStorage(FileJournalBackend(path)), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    return study


def test_a_changed_digit_in_a_middle_line_is_told_with_its_line_and_offset(tmp_path):
    """Regression: a changed digit inside a valid line went unnoticed."""
    path = tmp_path / "studies.journal"
    _journal_with_trials(path)
    lines = path.read_bytes().splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines) if b'"value' in line or b'"values' in line)
    digit = next(i for i, c in enumerate(lines[target]) if chr(c).isdigit() and i > 20)
    changed = lines[target][:digit] + str((int(chr(lines[target][digit])) + 1) % 10).encode() \
        + lines[target][digit + 1:]
    path.write_bytes(b"".join([*lines[:target], changed, *lines[target + 1:]]))
    offset = sum(len(line) for line in lines[:target])
    with pytest.raises(JournalCorruptedError,
                       match=rf"line {target + 1} \(byte offset {offset}\): its checksum"):
        optuna.load_study(study_name="s", storage=JournalStorage(FileJournalBackend(path)))


def test_a_bad_middle_line_is_told_not_blamed_on_a_database_server(tmp_path):
    """Regression: 'Expecting value: line 1 column 43 ... and that a database server is
    running', with no line number."""
    path = tmp_path / "studies.journal"
    _journal_with_trials(path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:3], b"{not json\n", *lines[4:]]))
    with pytest.raises(JournalCorruptedError, match=r"damaged at line 4 .*not valid JSON") as raised:
        foldwise.load_result("s", storage=f"journal:{path}")
    assert "database server" not in str(raised.value)


def test_optunas_own_journal_storage_reads_a_checksummed_journal(tmp_path):
    path = tmp_path / "studies.journal"
    ours = _journal_with_trials(path)
    theirs = optuna.load_study(study_name="s", storage=JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path))))
    assert [t.params for t in theirs.trials] == [t.params for t in ours.trials]
    assert [t.value for t in theirs.trials] == [t.value for t in ours.trials]


def test_optuna_runs_on_it_and_a_study_survives_reopening(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path / "studies.journal"
    study = optuna.create_study(storage=JournalStorage(FileJournalBackend(path)), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=5)
    again = optuna.load_study(study_name="s", storage=JournalStorage(FileJournalBackend(path)))
    assert len(again.trials) == 5


@pytest.mark.slow
def test_lock_of_a_killed_writer_is_released_at_once(tmp_path):
    path = tmp_path / "j.journal"
    FileJournalBackend(path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    start = time.monotonic()
    FileJournalBackend(path).append_logs([{"op": 1}])
    assert time.monotonic() - start < 5  # no stale lock file to wait out


def test_storage_specs(tmp_path, store_dir):
    default = parse_storage(None)
    assert default.kind == "journal" and default.location == str(store_dir / "studies.journal")
    assert parse_storage(tmp_path / "x.journal").kind == "journal"
    assert parse_storage("journal:" + str(tmp_path / "y")).location == str(tmp_path / "y")
    assert parse_storage("memory").kind == "memory" and not parse_storage("memory").shareable
    sqlite = parse_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert sqlite.kind == "rdb" and sqlite.shareable
    assert isinstance(open_storage(sqlite), RDBStorage)
    memory = InMemoryStorage()
    assert open_storage(parse_storage(memory)) is memory
    assert isinstance(open_storage(default), JournalStorage)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("studies.db", "cannot tell what kind of storage"),
        ("nosuchdialect://user@host/db", "cannot open the study storage"),
        (42, "storage must be None"),
    ],
)
def test_bad_storages_name_the_fix(storage, message):
    with pytest.raises(StorageError, match=message):
        open_storage(parse_storage(storage))


def test_liveness_of_workers():
    me = current_worker()
    assert not is_dead(me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert is_dead({**me, "pid": child.pid, "start": None})
    assert not is_dead({**me, "host": "another-host", "pid": child.pid})
    assert not is_dead("garbage")
    # a reused pid (same number, other start time) counts as dead
    assert is_dead({**me, "pid": os.getppid(), "start": "-1"})


def test_a_dead_worker_with_this_process_s_pid_is_dead():
    """Regression: a restart that got the dead worker's pid (PID 1 in a container) took
    the dead worker's RUNNING trial for its own and waited for it forever."""
    me = current_worker()
    assert is_dead({**me, "token": "0" * 16})  # same pid and host, another process
    assert not is_dead({**me, "token": None})  # a record too old to say: left alone


def test_a_worker_of_an_earlier_boot_is_dead():
    me = current_worker()
    if me["boot"] is None:
        pytest.skip("this system exposes no boot id")
    assert is_dead({**me, "pid": os.getppid(), "boot": "another-boot"})
