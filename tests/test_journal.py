"""The journal backend and storage opening: torn tails, kernel locks, specs, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib

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
from foldwise.storage import _journal_file as journal_file
from foldwise.storage._journal_file import CHECKSUM_KEY, decode_line, encode_line


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


def _old_encode_line(log):
    """A journal line as foldwise wrote it before lines were checked on their bytes."""
    text = json.dumps(log, separators=(",", ":"))
    return json.dumps({**log, CHECKSUM_KEY: f"{zlib.crc32(text.encode()):08x}"},
                      separators=(",", ":")) + "\n"


_LOGS = [
    {"op_code": 4, "worker_id": "w-1", "study_id": 0, "datetime_start": "2026-01-01T00:00:00"},
    {"op_code": 5, "worker_id": "w", "trial_id": 3, "param_name": "x",
     "param_value_internal": 0.1 + 0.2, "distribution": '{"name": "FloatDistribution"}'},
    {"op_code": 8, "worker_id": "w", "trial_id": 3,
     "user_attr": {"k": {"\u00e9t\u00e9": [1, -2.5e-300, None, True, "a\"b\\"]}}},
    {"op_code": 6, "worker_id": "w", "trial_id": 3, "state": 1, "values": [float("nan")]},
    {"fw_crc_not": "x", "s": "\n\r\t", "big": 2**70},
]


@pytest.mark.parametrize("log", _LOGS)
def test_lines_are_written_as_before_and_read_back(log):
    line = encode_line(log)
    assert line == _old_encode_line(log)
    decoded, why = decode_line(line.encode())
    assert why == ""
    assert json.dumps(decoded) == json.dumps(log)  # NaN != NaN: compare the text


def test_a_line_is_checked_on_its_bytes_without_encoding_it_again(monkeypatch):
    """Replaying a 20-fold x 1,000-trial study spent a third of its time encoding every
    line's JSON again to check its checksum."""
    lines = [encode_line(log).encode() for log in _LOGS]

    def refused(*args, **kwargs):
        raise AssertionError("a line written by encode_line was encoded again")

    monkeypatch.setattr(journal_file.json, "dumps", refused)
    assert all(decode_line(line)[1] == "" for line in lines)


def test_checksums_away_from_the_end_and_spaced_json_are_read_as_before():
    """Lines whose bytes are not encode_line's (checksum first, spaces) are checked on
    their JSON encoded again, as before: accepted when it matches, told when not."""
    log = _LOGS[1]
    crc = f"{zlib.crc32(json.dumps(log, separators=(',', ':')).encode()):08x}"
    first = json.dumps({CHECKSUM_KEY: crc, **log}, separators=(",", ":")) + "\n"
    spaced = json.dumps({**log, CHECKSUM_KEY: crc}) + "\n"
    for line in (first, spaced):
        assert decode_line(line.encode()) == (log, "")
        damaged = line.replace('"x"', '"y"').encode()
        assert decode_line(damaged) == (None, "its checksum does not match its content (a "
                                              "changed byte)")


@pytest.mark.parametrize("where", ["payload", "checksum", "brace"])
def test_every_changed_byte_of_a_line_is_told(where):
    line = bytearray(encode_line(_LOGS[2]).encode())
    position = {"payload": line.index(b"3"), "checksum": len(line) - 4,
                "brace": len(line) - 2}[where]
    for replacement in b"0123456789abcdefx} ":
        if replacement == line[position]:
            continue
        changed = bytes(line[:position]) + bytes([replacement]) + bytes(line[position + 1:])
        log, why = decode_line(changed)
        assert log is None and why, (where, chr(replacement))


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
