"""Reading creates nothing and works on a read-only store; a read-only cache says so; an
eviction racing a reader is a miss, not damage.

The read-only store tests use a real read-only bind mount inside a user and mount
namespace (``unshare -rm``), because the tests may run as root, for whom permission bits
do not stop writes. Where such a mount cannot be made, they are skipped with the reason.
"""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import pickle
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import foldwise
from foldwise.cache import BacktestCache, SQLiteIndex
from foldwise.cache._readonly import read_only_error
from foldwise.cli import main
from foldwise.errors import (
    CacheMissError,
    CacheReadOnlyError,
    StorageError,
    StorageNotFoundError,
)
from foldwise.examples import sma_crossover
from foldwise.optimizer._snapshots import snapshot_path
from foldwise.storage import FileJournalBackend, open_storage, parse_storage

DATA = foldwise.datasets.load_goog().slice(None, "2008-12-31")
PARAMS = {"fast": 5, "slow": 40}


def collect() -> None:
    """Collect garbage until the caches dropped above have closed their connections (a
    cache's last-used times are written when it is collected, which takes a second pass)."""
    for _ in range(3):
        gc.collect()


def listing(root: Path) -> set[str]:
    """Every file and directory under ``root`` (relative paths), or an empty set."""
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def run_study(directory: Path) -> str:
    """The small study of these tests, stored in ``directory``; returns its name."""
    result = foldwise.optimize(
        sma_crossover, DATA, {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(40, 120)},
        foldwise.WalkForward(train="2Y", test="6M"), n_trials=4,
        storage=f"journal:{directory}/studies.journal",
        cache=BacktestCache(directory, keep_arrays="always", artifacts="files"), seed=1, show_progress=False)
    return result.name


@pytest.fixture(scope="module")
def stored_study(tmp_path_factory):
    """(directory, study name): a finished study and its cache, connections closed."""
    directory = tmp_path_factory.mktemp("study") / "fw"
    name = run_study(directory)
    collect()  # the result's cache closes its index connections (no -wal/-shm left)
    return directory, name


@pytest.fixture
def store(stored_study, tmp_path):
    """A private copy of the stored study: (directory, study name)."""
    directory, name = stored_study
    copy = tmp_path / "fw"
    shutil.copytree(directory, copy)
    return copy, name


@pytest.fixture(autouse=True)
def _no_foldwise_dir(monkeypatch):
    monkeypatch.delenv("FOLDWISE_DIR", raising=False)


# --- 1. reading creates nothing ----------------------------------------------------------


@pytest.mark.parametrize("action", [["stats"], ["runs"], ["verify"]])
def test_cache_read_commands_on_a_missing_dir_create_nothing_and_fail(action, tmp_path, capsys):
    typo = tmp_path / "typo"
    assert main(["cache", *action, "--dir", str(typo)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1  # one line, no traceback
    assert f"no backtest cache at {typo / 'cache'}" in captured.err
    assert "does not exist" in captured.err and "--dir" in captured.err
    assert not typo.exists()


@pytest.mark.parametrize("action", [["stats"], ["runs"], ["verify"]])
def test_cache_read_commands_on_the_missing_default_say_so(action, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["cache", *action]) == 0
    assert "no backtest cache yet" in capsys.readouterr().out
    assert listing(tmp_path) == set()


@pytest.mark.parametrize("where", [
    lambda d: ["--storage", f"sqlite:///{d}/x.db"],
    lambda d: ["--storage", f"journal:{d}/x.journal"],
    lambda d: ["--dir", f"{d}/typo"],
], ids=["sqlite", "journal", "dir"])
def test_show_and_studies_on_a_missing_storage_create_nothing_and_fail(where, tmp_path,
                                                                      capsys):
    for command in (["show", "X"], ["studies"]):
        assert main([*command, *where(tmp_path)]) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith("foldwise: error: no study storage at ")
        assert captured.err.count("\n") == 1
        assert "the file does not exist" in captured.err and "--storage" in captured.err
    assert listing(tmp_path) == set()


def test_studies_on_the_missing_default_storage_says_there_are_none_yet(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["studies"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no studies yet: ")
    assert str(tmp_path / ".foldwise" / "studies.journal") in out
    assert listing(tmp_path) == set()


def test_reading_functions_create_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert foldwise.list_studies() == []  # the default storage: no study yet
    with pytest.raises(StorageNotFoundError, match="does not exist"):
        foldwise.list_studies(f"journal:{tmp_path}/typo/studies.journal")
    with pytest.raises(StorageNotFoundError, match=r"x\.db: the file does not exist"):
        foldwise.list_studies(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(StorageNotFoundError, match="does not exist"):
        foldwise.load_result("X", storage=f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(StorageNotFoundError, match="studies.journal: the file does not exist"):
        foldwise.load_result("X")
    cache = BacktestCache(tmp_path / "c", read_only=True)
    assert cache.read_only and not cache.exists
    assert cache.stats().runs == 0 and cache.runs().empty and cache.verify().ok
    with pytest.raises(CacheReadOnlyError, match="opened read-only"):
        cache.get_or_run(sma_crossover, PARAMS, DATA)
    cache.close()
    assert listing(tmp_path) == set()


def test_a_read_only_journal_backend_creates_nothing_and_refuses_appends(tmp_path):
    path = tmp_path / "j" / "studies.journal"
    with pytest.raises(FileNotFoundError):
        FileJournalBackend(path, read_only=True)
    assert not path.parent.exists()
    FileJournalBackend(path).append_logs([{"op": 1}])
    reader = FileJournalBackend(path, read_only=True)
    assert list(reader.read_logs(0)) == [{"op": 1}]
    with pytest.raises(StorageError, match="opened for reading only"):
        reader.append_logs([{"op": 2}])
    copy = pickle.loads(pickle.dumps(reader))  # a worker reopens it read-only too
    assert copy.read_only and list(copy.read_logs(0)) == [{"op": 1}]
    assert path.read_bytes().count(b"\n") == 1


def test_a_read_only_sqlite_storage_is_read_without_heartbeats(tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    optuna.create_study(storage=url, study_name="a")
    before = listing(tmp_path)
    opened = open_storage(parse_storage(url), read_only=True)
    assert optuna.get_all_study_names(storage=opened) == ["a"]
    assert opened.get_heartbeat_interval() is None
    assert foldwise.list_studies(url) == ["a"]
    assert listing(tmp_path) == before


def test_a_read_only_index_creates_nothing_and_refuses_writes(tmp_path):
    path = tmp_path / "cache" / "index.sqlite"
    missing = SQLiteIndex(path, read_only=True)
    assert missing.rows() == [] and missing.get("k") is None and not tmp_path.joinpath(
        "cache").exists()
    cache = BacktestCache(tmp_path)
    cache.get_or_run(sma_crossover, PARAMS, DATA)
    cache.close()
    before = listing(tmp_path)
    reader = SQLiteIndex(path, read_only=True)
    rows = reader.rows()
    assert len(rows) == 1 and reader.get(rows[0].key) == rows[0]
    with pytest.raises(CacheReadOnlyError, match="opened read-only"):
        reader.insert_many([rows[0]])
    with pytest.raises(CacheReadOnlyError):
        reader.delete([rows[0].key])
    reader.touch({rows[0].key: 1e12})  # last-used times are skipped, not an error
    again = pickle.loads(pickle.dumps(reader))
    assert again.read_only_reason == "it was opened read-only"
    reader.close()
    again.close()
    assert listing(tmp_path) == before
    assert SQLiteIndex(path).get(rows[0].key).last_used == rows[0].last_used


def read_models(paths: set[str]) -> set[str]:
    """The derived files a reader may keep in a writable store: the study's snapshot beside
    the journal and its computed statistics (content-keyed, deletable at any time)."""
    return {p for p in paths if p.split("/")[0] in ("statistics", "studies.journal.snapshots")}


def test_read_commands_create_nothing_in_a_writable_store(store, capsys):
    """Reading creates nothing a study or the cache depends on: only its read models (a
    snapshot of the records, computed statistics), and only once."""
    directory, name = store
    before = listing(directory)
    assert read_models(before) == {  # optimize wrote the snapshot, nothing computed yet
        "studies.journal.snapshots",
        f"studies.journal.snapshots/{snapshot_path('x', name).name}"}
    for _ in range(2):
        for argv in (["studies"], ["show", name], ["cache", "stats"], ["cache", "runs"],
                     ["cache", "verify"]):
            assert main([*argv, "--dir", str(directory)]) == 0, argv
        out = capsys.readouterr().out
        assert name in out and "were re-created" not in out and "all intact" in out
        result = foldwise.load_result(name, storage=f"journal:{directory}/studies.journal",
                                      cache=directory)
        assert result.runs_rebuilt == 0 and result.oos_returns.size > 0
        del result
        collect()  # connections of the caches opened above close
        after = listing(directory)
        assert after - read_models(after) == before - read_models(before)
        assert read_models(after) - read_models(before) == {"statistics", next(
            p for p in after if p.startswith("statistics/"))}


def test_writing_paths_still_create_what_they_need(tmp_path):
    cache = BacktestCache(tmp_path / "new")
    cache.get_or_run(sma_crossover, PARAMS, DATA)
    cache.close()
    assert (tmp_path / "new" / "cache" / "index.sqlite").is_file()
    assert foldwise.BacktestCache(tmp_path / "new", read_only=True).stats().full_runs == 1


# --- 3. a read-only cache is diagnosed as read-only ----------------------------------------


def test_a_read_only_cache_refuses_writes_before_writing_anything(store):
    directory, _ = store
    before = listing(directory)
    cache = BacktestCache(directory, read_only=True)
    n = cache.stats().runs
    with pytest.raises(CacheReadOnlyError) as refused:
        cache.get_or_run(sma_crossover, {"fast": 3, "slow": 41}, DATA)
    message = str(refused.value)
    assert str(directory / "cache") in message and "opened read-only" in message
    assert "writable" in message and "--dir" in message and "damaged" not in message
    with pytest.raises(CacheReadOnlyError):
        cache.evict(older_than=0)
    assert cache.executed == 0 and cache.stats().runs == n
    cache.close()
    assert listing(directory) == before


@pytest.mark.parametrize(("code", "cause"), [(errno.EROFS, "is on a read-only file system"),
                                         (errno.EACCES, "may not write")])
def test_a_refused_write_names_the_path_the_cause_and_the_fix(code, cause, tmp_path):
    path = tmp_path / "cache" / "artifacts" / "ab"
    error = read_only_error(OSError(code, os.strerror(code), str(path)), tmp_path / "cache")
    assert isinstance(error, CacheReadOnlyError)
    assert str(path) in str(error) and cause in str(error)
    assert "Make it writable, or pass a writable cache directory" in str(error)
    assert read_only_error(OSError(errno.ENOSPC, "full", str(path)), tmp_path) is None


# --- 4. an eviction racing a reader is a miss, not damage ---------------------------------


def _messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def _stored_and_looked_up(directory: Path) -> tuple[BacktestCache, str]:
    """A cache holding one run, and a second cache object that has looked it up (its
    record is remembered) without reading its artifact."""
    writer = BacktestCache(directory, keep_arrays="always", artifacts="files")
    writer.get_or_run(sma_crossover, PARAMS, DATA)
    writer.close()
    reader = BacktestCache(directory)
    key = reader.key(sma_crossover, PARAMS, DATA).digest
    assert reader.get(key) is not None
    return reader, key


def test_an_entry_evicted_after_its_lookup_is_run_again_not_called_damaged(tmp_path, caplog):
    reader, key = _stored_and_looked_up(tmp_path)
    BacktestCache(tmp_path).clear()  # another user of the directory evicts it: row, then file
    caplog.set_level(logging.DEBUG, logger="foldwise")
    result = reader.get_or_run(sma_crossover, PARAMS, DATA)
    assert result.metrics() == sma_crossover.run(DATA, PARAMS).metrics()
    assert reader.executed == 1  # run again
    assert not [m for m in _messages(caplog, logging.WARNING) if "damaged" in m]
    assert any("evicted" in m for m in _messages(caplog, logging.INFO))
    assert BacktestCache(tmp_path).get(key).result.metrics() == result.metrics()


def test_a_record_whose_entry_was_evicted_is_a_miss(tmp_path, caplog):
    # one file per run, deleted with its row (a pack stays until no row names it and it
    # has not been written for ten minutes: its intact bytes are read, not missed)
    writer = BacktestCache(tmp_path, keep_arrays="always", artifacts="files")
    writer.metrics(sma_crossover, PARAMS, DATA, window=(0, 300))  # the run and a slice of it
    writer.close()
    reader = BacktestCache(tmp_path)
    record = reader.get(reader.key(sma_crossover, PARAMS, DATA))
    part = reader.get(reader.key(sma_crossover, PARAMS, DATA, window=(0, 300)))
    BacktestCache(tmp_path).clear()  # another user of the directory evicts both
    caplog.set_level(logging.DEBUG, logger="foldwise")
    with pytest.raises(CacheMissError, match="evicted"):
        _ = record.result
    with pytest.raises(CacheMissError, match="evicted"):
        _ = part.result
    assert not [m for m in _messages(caplog, logging.WARNING) if "damaged" in m]


def test_an_entry_replaced_after_its_lookup_is_read_not_run(tmp_path, caplog):
    reader, _ = _stored_and_looked_up(tmp_path)
    other = BacktestCache(tmp_path)
    other.clear()
    other.get_or_run(sma_crossover, PARAMS, DATA)  # stored again under a new file name
    other.close()
    caplog.set_level(logging.DEBUG, logger="foldwise")
    result = reader.get_or_run(sma_crossover, PARAMS, DATA)
    assert reader.executed == 0
    assert result.metrics() == sma_crossover.run(DATA, PARAMS).metrics()
    assert not [m for m in _messages(caplog, logging.WARNING) if "damaged" in m]


def test_a_row_that_still_names_a_missing_file_is_damage(tmp_path, caplog):
    reader, key = _stored_and_looked_up(tmp_path)
    os.unlink(tmp_path / "cache" / reader.get(key)._row.artifact)  # the row stays
    caplog.set_level(logging.DEBUG, logger="foldwise")
    reader.get_or_run(sma_crossover, PARAMS, DATA)
    assert any("is damaged" in m for m in _messages(caplog, logging.WARNING))


def test_a_study_whose_runs_were_evicted_after_their_lookup_rebuilds_them(store, caplog):
    directory, name = store
    reader = BacktestCache(directory)
    keys = [row.key for row in reader.index.rows(kind="full")]
    assert keys and all(reader.get(key) is not None for key in keys)  # looked up, not read
    BacktestCache(directory).clear(include_pinned=True)  # another user evicts them all
    caplog.set_level(logging.DEBUG, logger="foldwise")
    result = foldwise.load_result(name, storage=f"journal:{directory}/studies.journal",
                                  cache=reader)
    assert "walk-forward" in result.text_report()
    assert result.runs_rebuilt > 0
    warnings = _messages(caplog, logging.WARNING)
    assert not [m for m in warnings if "damaged" in m or "cannot be used" in m], warnings
    assert reader.stats().full_runs > 0  # re-created runs were stored back


@pytest.mark.slow  # a second interpreter (about a second)
def test_an_eviction_by_another_process_is_not_damage(tmp_path, caplog):
    reader, _ = _stored_and_looked_up(tmp_path)
    subprocess.run([sys.executable, "-c", "import sys, foldwise; "
                    "print(foldwise.BacktestCache(sys.argv[1]).clear())", str(tmp_path)],
                   check=True, capture_output=True, text=True, timeout=120)
    assert not list((tmp_path / "cache" / "artifacts").rglob("*.parquet"))  # evicted
    caplog.set_level(logging.DEBUG, logger="foldwise")
    result = reader.get_or_run(sma_crossover, PARAMS, DATA)
    assert result.metrics() == sma_crossover.run(DATA, PARAMS).metrics()
    assert reader.executed == 1
    assert not [m for m in _messages(caplog, logging.WARNING) if "damaged" in m]


# --- 2. a read-only store can be read (a real read-only mount) -----------------------------


def in_read_only_mount(directory: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -c script args`` where ``directory`` is a read-only bind mount (in a
    user and mount namespace of its own; nothing outside it changes)."""
    d = shlex.quote(str(directory))
    command = (f"mount --bind {d} {d} && mount -o remount,ro,bind {d} {d} && exec "
               f"{shlex.quote(sys.executable)} -c {shlex.quote(script)} "
               + " ".join(shlex.quote(a) for a in args))
    return subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="session")
def read_only_mount(tmp_path_factory):
    """Skip (with the reason, printed) where a read-only bind mount cannot be made."""
    reason = None
    if shutil.which("unshare") is None:
        reason = "`unshare` is not installed"
    else:
        probe = tmp_path_factory.mktemp("probe")
        done = in_read_only_mount(probe, "import errno, pathlib, sys\ntry:\n"
                                  "    (pathlib.Path(sys.argv[1]) / 'x').touch()\n"
                                  "except OSError as exc:\n    print(exc.errno)\n", str(probe))
        if done.returncode != 0 or done.stdout.strip() != str(errno.EROFS):
            reason = (f"no read-only bind mount in a user namespace here (`unshare -rm` "
                      f"exited {done.returncode}: {(done.stderr or done.stdout).strip()})")
    if reason is not None:
        print(f"test_read_only: skipping the read-only mount tests: {reason}", file=sys.stderr)
        pytest.skip(reason)


READ_EVERYTHING = r"""
import contextlib, io, json, sys
import foldwise
from foldwise.cli import main

directory, name = sys.argv[1], sys.argv[2]
storage = f"journal:{directory}/studies.journal"

def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return [code, out.getvalue(), err.getvalue()]

result = foldwise.load_result(name, storage=storage, cache=directory)
cache = foldwise.BacktestCache(directory)
print(json.dumps({
    "studies": foldwise.list_studies(storage),
    "report": result.text_report(),
    "rebuilt": result.runs_rebuilt,
    "read_only": cache.read_only,
    "reason": cache.index.read_only_reason,
    "runs": cache.stats().runs,
    "show": cli("show", name, "--dir", directory),
    "studies_cli": cli("studies", "--dir", directory),
    "stats": cli("cache", "stats", "--dir", directory),
    "runs_cli": cli("cache", "runs", "--dir", directory),
    "verify": cli("cache", "verify", "--dir", directory),
}))
"""


@pytest.mark.slow  # a study, then a second interpreter in a namespace (seconds)
def test_a_read_only_store_can_be_read(read_only_mount, store):
    directory, name = store
    report = foldwise.load_result(name, storage=f"journal:{directory}/studies.journal",
                                  cache=directory).text_report()
    with BacktestCache(directory, read_only=True) as cache:
        runs = cache.stats().runs
    collect()
    before = listing(directory)
    done = in_read_only_mount(directory, READ_EVERYTHING, str(directory), name)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["studies"] == [name]
    assert got["report"] == report and got["rebuilt"] == 0
    assert got["read_only"] is True and "read-only file system" in got["reason"]
    assert got["runs"] == runs > 0
    for command in ("show", "studies_cli", "stats", "runs_cli", "verify"):
        code, _, err = got[command]
        assert code == 0 and "Traceback" not in err, (command, err)
    assert got["show"][1].startswith(report)
    table = got["studies_cli"][1].split("\n\n")[0].splitlines()  # header, one row a study
    assert table[0].split()[0] == "study" and [row.split()[0] for row in table[1:]] == [name]
    assert "complete" in table[1]
    assert f"runs         {runs} " in got["stats"][1]
    assert "sma_crossover" in got["runs_cli"][1] and "all intact" in got["verify"][1]
    assert listing(directory) == before


WRITE_ATTEMPTS = r"""
import contextlib, io, json, sys
import foldwise
from foldwise.cli import main

directory = sys.argv[1]
out = {}
cache = foldwise.BacktestCache(directory)
try:
    cache.get_or_run(foldwise.examples.sma_crossover, {"fast": 3, "slow": 41},
                     foldwise.datasets.load_goog())
except Exception as exc:
    out["get_or_run"] = [type(exc).__name__, str(exc)]
err = io.StringIO()
with contextlib.redirect_stderr(err):
    out["evict"] = [main(["cache", "evict", "--older-than", "0", "--dir", directory]),
                    err.getvalue()]
try:  # a cache that was never opened here: its index is created on a read-only disk
    foldwise.BacktestCache(directory + "/sub")
except Exception as exc:
    out["create"] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


@pytest.mark.slow  # a second interpreter in a namespace (seconds)
def test_writes_to_a_read_only_mount_say_read_only(read_only_mount, store):
    directory, _ = store
    before = listing(directory)
    done = in_read_only_mount(directory, WRITE_ATTEMPTS, str(directory))
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    for kind, message in (got["get_or_run"], got["create"]):
        assert kind == "CacheReadOnlyError", message
        assert "read-only file system" in message and "Make it writable" in message
        assert "damaged" not in message and "verify --repair" not in message
        assert str(directory) in message
    code, err = got["evict"]
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("foldwise: error: cannot write to the backtest cache")
    assert "read-only file system" in err.splitlines()[-1]
    assert listing(directory) == before


READ_INDEX = r"""
import sys
import foldwise
cache = foldwise.BacktestCache(sys.argv[1], read_only=True)
print(cache.stats().runs)
"""


@pytest.mark.slow  # a second interpreter in a namespace (seconds)
def test_a_read_only_index_with_writes_still_in_its_wal_is_read(read_only_mount, store):
    directory, _ = store
    index = directory / "cache" / "index.sqlite"
    with BacktestCache(directory, read_only=True) as cache:
        n = cache.stats().runs
    writer = sqlite3.connect(index, isolation_level=None)
    try:  # a writer still connected, its last row only in the -wal file
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        columns = [r[1] for r in writer.execute("PRAGMA table_info(runs)")]
        picked = ", ".join("'f' || substr(key, 2)" if c == "key" else c for c in columns)
        writer.execute(f"INSERT INTO runs SELECT {picked} FROM runs WHERE kind = 'slice' "
                       "AND key NOT LIKE 'f%' LIMIT 1")
        assert Path(f"{index}-wal").stat().st_size > 0 and Path(f"{index}-shm").exists()
        done = in_read_only_mount(directory, READ_INDEX, str(directory))
    finally:
        writer.close()
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == n + 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the permission bits "
                    "say; the read-only mount tests cover a read-only store there")
def test_a_store_this_user_cannot_write_can_be_read(store, capsys):  # pragma: no cover
    directory, name = store
    modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")]}
    try:
        for path in modes:
            path.chmod(modes[path] & ~0o222)
        before = listing(directory)
        assert foldwise.list_studies(f"journal:{directory}/studies.journal") == [name]
        result = foldwise.load_result(name, storage=f"journal:{directory}/studies.journal",
                                      cache=directory)
        assert result.runs_rebuilt == 0 and "permission denied" in (
            BacktestCache(directory).index.read_only_reason or "")
        assert main(["cache", "stats", "--dir", str(directory)]) == 0
        assert main(["show", name, "--dir", str(directory)]) == 0
        with pytest.raises(CacheReadOnlyError, match="permission denied"):
            BacktestCache(directory).get_or_run(sma_crossover, {"fast": 3, "slow": 41}, DATA)
        assert listing(directory) == before
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
