"""The cache's arrays at any location pyarrow's file systems reach.

Every location below gets the same checks through the public API: runs stored there read
back equal to a backtest run without the cache, the cache directory holds none of them,
their checksums catch damage, ``verify`` finds missing and foreign files and ``clear``
removes the cache's own. The locations: another local directory, a ``file://`` URL, a
:class:`pyarrow.fs.SubTreeFileSystem`, fsspec's in-memory file system (an object-store-like
file system that cannot append) and a real S3 server (moto, on loopback) by URL.
"""

from __future__ import annotations

import errno
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pyarrow.fs as pafs
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import foldwise
from foldwise import BacktestCache, datasets, examples
from foldwise.cli import main
from foldwise.errors import CacheArgumentError, CacheCorruptedError

from ._object_store import S3Server

DATA = datasets.load_goog()
SETS = [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 50}, {"fast": 20, "slow": 120}]


@dataclass
class Location:
    """An artifact location as a user gives it, and the file system to inspect it with."""

    spec: Any
    filesystem: pafs.FileSystem
    base: str
    layout: str

    def path(self, relpath: str) -> str:
        return f"{self.base}/{relpath}" if self.base else relpath

    def files(self) -> list[str]:
        selector = pafs.FileSelector(self.base, recursive=True, allow_not_found=True)
        prefix = f"{self.base}/".lstrip("/") if self.base else ""
        return sorted(info.path.lstrip("/").removeprefix(prefix)
                      for info in self.filesystem.get_file_info(selector)
                      if info.type == pafs.FileType.File)

    def read(self, relpath: str) -> bytes:
        with self.filesystem.open_input_file(self.path(relpath)) as handle:
            return bytes(handle.read())

    def write(self, relpath: str, data: bytes) -> None:
        with self.filesystem.open_output_stream(self.path(relpath)) as handle:
            handle.write(data)


def _local_directory(tmp_path: Path) -> Location:
    return Location(str(tmp_path / "shared"), pafs.LocalFileSystem(),
                    (tmp_path / "shared").as_posix(), "packs")


def _file_url(tmp_path: Path) -> Location:
    return Location(f"file://{tmp_path / 'by-url'}", pafs.LocalFileSystem(),
                    (tmp_path / "by-url").as_posix(), "packs")


def _subtree(tmp_path: Path) -> Location:
    (tmp_path / "subtree").mkdir()
    filesystem = pafs.SubTreeFileSystem(str(tmp_path / "subtree"), pafs.LocalFileSystem())
    return Location(filesystem, filesystem, "", "packs")


def _memory(tmp_path: Path) -> Location:
    memory = MemoryFileSystem()
    memory.store.clear()  # the class keeps one store per process: start empty
    filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(memory))
    return Location(filesystem, filesystem, "", "files")


LOCATIONS: dict[str, Callable[[Path], Location]] = {
    "directory": _local_directory, "file-url": _file_url, "subtree": _subtree,
    "fsspec-memory": _memory}


@pytest.fixture(params=[*LOCATIONS, "s3"])
def location(request, tmp_path) -> Location:
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        prefix = f"t-{abs(hash(request.node.nodeid)):x}"
        return Location(server.url(prefix), server.filesystem(), f"foldwise/{prefix}", "files")
    return LOCATIONS[request.param](tmp_path)


def _fill(tmp_path: Path, location: Location) -> BacktestCache:
    cache = BacktestCache(tmp_path / "fw", artifact_location=location.spec, keep_arrays="always")
    for params in SETS:
        cache.get_or_run(examples.sma_crossover, params, DATA)
    return cache


def test_runs_stored_at_the_location_read_back_as_an_independent_backtest(tmp_path, location):
    cache = _fill(tmp_path, location)
    rows = [r for r in cache.index.rows() if r.artifact is not None]
    assert len(rows) == len(SETS)
    # the arrays are at the location, in the layout it allows; none in the cache directory
    stored = location.files()
    named = {r.artifact.partition("@")[0] for r in rows}
    folder = "packs/" if location.layout == "packs" else "artifacts/"
    assert named <= set(stored) and all(n.startswith(folder) for n in named)
    cache_dir = tmp_path / "fw" / "cache"
    assert not (cache_dir / "packs").exists() and not (cache_dir / "artifacts").exists()
    cache.close()
    again = BacktestCache(tmp_path / "fw", artifact_location=location.spec)
    for params in SETS:
        expected = examples.sma_crossover.run(DATA, params)
        record = again.get(again.key(examples.sma_crossover, params, DATA))
        assert record is not None and record._row.artifact is not None
        result = record.result
        np.testing.assert_array_equal(result.arrays.net, expected.arrays.net)
        np.testing.assert_array_equal(result.arrays.positions, expected.arrays.positions)
        assert result.metrics() == expected.metrics()
    report = again.verify()
    assert report.ok and report.checked == len(SETS)
    stats = again.stats()
    assert stats.artifact_location is not None and stats.with_arrays == len(SETS)
    assert stats.bytes_on_disk >= sum(r.n_bytes for r in rows)
    assert "artifacts" in str(stats)


def test_damage_at_the_location_is_caught_by_the_checksum_and_repaired(tmp_path, location):
    cache = _fill(tmp_path, location)
    key = cache.key(examples.sma_crossover, SETS[1], DATA)
    row = cache.index.get(key.digest)
    name, _, offset = row.artifact.partition("@")
    data = bytearray(location.read(name))
    data[int(offset or 0) + row.n_bytes // 2] ^= 0xFF  # same size, one byte changed
    location.write(name, bytes(data))
    fresh = BacktestCache(tmp_path / "fw", artifact_location=location.spec)
    with pytest.raises(CacheCorruptedError, match="does not match the checksum"):
        _ = fresh.get(key).result
    report = fresh.verify()
    damaged = {k for k, _ in report.corrupted}
    # in a pack, the neighbours' bytes are intact: only this entry is damaged
    assert key.digest in damaged and (location.layout == "files" or len(damaged) == 1)
    # asking for the run runs it again, equal to the original
    rerun = fresh.get_or_run(examples.sma_crossover, SETS[1], DATA)
    expected = examples.sma_crossover.run(DATA, SETS[1])
    np.testing.assert_array_equal(rerun.arrays.net, expected.arrays.net)
    assert fresh.verify(repair=True).repaired
    assert fresh.verify().ok


def test_verify_finds_a_missing_artifact_and_foreign_files_which_it_never_deletes(
        tmp_path, location):
    cache = _fill(tmp_path, location)
    if location.layout == "packs":
        pytest.skip("runs share one pack file here; the pack tests cover a missing pack")
    row = cache.index.get(cache.key(examples.sma_crossover, SETS[0], DATA).digest)
    location.filesystem.delete_file(location.path(row.artifact))
    location.write("notes/readme.txt", b"someone else's file")
    fresh = BacktestCache(tmp_path / "fw", artifact_location=location.spec)
    with pytest.raises(CacheCorruptedError, match="is gone"):
        _ = fresh.get(row.key).result
    report = fresh.verify()
    assert report.missing == [row.key] and report.foreign == ["notes/readme.txt"]
    fresh.verify(repair=True)
    assert "notes/readme.txt" in location.files()
    assert fresh.clear() == len(SETS) - 1
    assert location.files() == ["notes/readme.txt"]


def test_a_failed_write_leaves_no_row_and_no_file_and_names_the_location(tmp_path):
    """The artifact is complete and in place before its index row: a write that fails at
    the move (a full store, say) leaves neither, and says where it failed."""

    class FullStore(pafs.FSSpecHandler):
        def move(self, src: str, dest: str) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    memory = MemoryFileSystem()
    memory.store.clear()
    filesystem = pafs.PyFileSystem(FullStore(memory))
    cache = BacktestCache(tmp_path, artifact_location=filesystem, keep_arrays="always")
    with pytest.raises(OSError, match="No space left") as raised:
        cache.get_or_run(examples.sma_crossover, SETS[0], DATA)
    assert raised.value.errno == errno.ENOSPC and "artifacts/" in str(raised.value)
    assert cache.index.rows() == []
    leftovers = [i.path for i in filesystem.get_file_info(
        pafs.FileSelector("", recursive=True)) if i.type == pafs.FileType.File]
    assert leftovers == []  # the temporary upload was removed too


def test_packs_where_the_file_system_cannot_append_are_refused_with_the_fix(tmp_path):
    memory = pafs.PyFileSystem(pafs.FSSpecHandler(MemoryFileSystem()))
    with pytest.raises(CacheArgumentError, match="artifacts='files'"):
        BacktestCache(tmp_path, artifact_location=memory, artifacts="packs")
    assert BacktestCache(tmp_path, artifact_location=memory)._store.layout == "files"
    # a local location may still be written one file per run
    local = BacktestCache(tmp_path, artifact_location=tmp_path / "x", artifacts="files")
    local.get_or_run(examples.sma_crossover, SETS[0], DATA)
    assert all(r.artifact.startswith("artifacts/") for r in local.index.rows() if r.artifact)


def test_a_location_that_cannot_be_opened_is_named_without_its_secrets(tmp_path):
    with pytest.raises(CacheArgumentError) as raised:
        BacktestCache(tmp_path, artifact_location="nosuchscheme://bucket/p?secret_key=XYZ123")
    message = str(raised.value)
    assert "nosuchscheme://bucket/p" in message and "XYZ123" not in message
    assert "pyarrow.fs.FileSystem" in message  # the fix
    with pytest.raises(CacheArgumentError, match="artifact_location must be"):
        BacktestCache(tmp_path, artifact_location=42)  # type: ignore[arg-type]


def _stored_in_a_worker(cache: BacktestCache, params: dict[str, int]) -> str | None:
    cache.get_or_run(examples.sma_crossover, params, DATA)
    row = cache.index.get(cache.key(examples.sma_crossover, params, DATA).digest)
    return None if row is None else row.artifact


@pytest.mark.slow
def test_worker_processes_write_to_the_same_location(tmp_path):
    """A cache sent to worker processes (pickled as its location and options) stores its
    arrays where the caller's does, not in a directory of the worker's."""
    shared = tmp_path / "shared"
    cache = BacktestCache(tmp_path / "fw", artifact_location=str(shared), keep_arrays="always")
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._store.location.base == shared.as_posix()
    with joblib.Parallel(n_jobs=2, backend="loky") as parallel:
        names = parallel(joblib.delayed(_stored_in_a_worker)(cache, p) for p in SETS)
    assert all(name is not None for name in names)
    packs = {name.partition("@")[0] for name in names}
    assert all((shared / pack).is_file() for pack in packs)
    assert not (tmp_path / "fw" / "cache" / "packs").exists()
    assert BacktestCache(tmp_path / "fw", artifact_location=str(shared)).verify().ok


@pytest.mark.slow
def test_optimize_and_the_command_line_with_artifacts_in_an_object_store(
        tmp_path, s3_server: S3Server, capsys):
    """The demo study with its arrays in S3 (moto on loopback), by URL, on two worker
    processes; then `foldwise cache stats|verify` and `show` read them there."""
    url = s3_server.url("optimize")
    cache = BacktestCache(tmp_path, artifact_location=url, keep_arrays="always")
    result = foldwise.optimize(
        examples.sma_crossover, DATA, {"fast": foldwise.Int(5, 50), "slow": foldwise.Int(20, 200)},
        foldwise.WalkForward(train="2Y", test="1Y"), constraints="fast < slow", n_trials=5,
        study="s3", storage=str(tmp_path / "studies.journal"), cache=cache, seed=0,
        n_jobs=2, show_progress=False)
    assert (result.folds["trials_complete"] == 5).all()
    rows = [r for r in cache.index.rows() if r.artifact is not None]
    assert rows and all(r.artifact.startswith("artifacts/") for r in rows)
    assert not (tmp_path / "cache" / "packs").exists()
    assert main(["cache", "stats", "--dir", str(tmp_path), "--artifacts", url]) == 0
    out = capsys.readouterr().out
    assert "artifacts    s3://foldwise/optimize" in out  # the URL without its query
    assert "endpoint_override" not in out
    assert main(["cache", "verify", "--dir", str(tmp_path), "--artifacts", url]) == 0
    assert main(["show", "s3", "--dir", str(tmp_path), "--artifacts", url]) == 0
    assert "walk-forward" in capsys.readouterr().out.lower()


def test_a_store_that_cannot_be_read_is_a_fault_of_the_machine_not_damage(tmp_path):
    """An artifact the store fails to serve (permissions, a network error) raises the
    OSError: verify does not call the entry damaged, and repair drops nothing."""
    memory = MemoryFileSystem()
    memory.store.clear()

    class Unreachable(pafs.FSSpecHandler):
        failing = False

        def open_input_file(self, path: str) -> Any:
            if self.failing:
                raise OSError(errno.EIO, "Input/output error")
            return super().open_input_file(path)

    handler = Unreachable(memory)
    filesystem = pafs.PyFileSystem(handler)
    cache = BacktestCache(tmp_path, artifact_location=filesystem, keep_arrays="always")
    cache.get_or_run(examples.sma_crossover, SETS[0], DATA)
    key = cache.key(examples.sma_crossover, SETS[0], DATA)
    Unreachable.failing = True
    try:
        fresh = BacktestCache(tmp_path, artifact_location=filesystem)
        with pytest.raises(OSError, match="Input/output error") as raised:
            _ = fresh.get(key).result
        assert not isinstance(raised.value, CacheCorruptedError)
        with pytest.raises(OSError, match="Input/output error"):
            fresh.verify(repair=True)
        assert fresh.stats().runs == 1  # nothing dropped
    finally:
        Unreachable.failing = False
    assert BacktestCache(tmp_path, artifact_location=filesystem).verify().ok
