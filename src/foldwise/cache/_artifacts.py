"""Artifacts: the arrays of a full run, as Parquet, appended to a pack file of this process.

Layout under the cache directory::

    packs/<32 hex>.pack                                   (written since pack files exist)
    artifacts/<first 2 hex of key>/<key>-<8 hex>.parquet  (one file per run, read only)

A process appends every artifact it writes to its own pack file (a new one per process and
per :data:`PACK_BYTES`), so storing a run is one ``write`` to an open file instead of the
creation, write and rename of a new file, which cost more than a fast strategy's whole
backtest. An artifact is named ``packs/<name>.pack@<offset>``; its length and checksum are
in the index row. Appends are complete before the index row that names them is inserted
(so no row names bytes not yet written), and a process killed mid-append leaves bytes no
row names. Nothing in a pack is ever overwritten: a pack file is deleted whole once no row
names any of its artifacts and it has not been written for ten minutes (eviction,
``clear``, ``verify --repair``), so evicting part of a pack frees its space when the rest
of it goes; runs stored together (one optimization) usually age together. Files of the
older one-file-per-run layout are read, verified and deleted as before.

One table per run, one row per bar: ``date`` (timestamp, time zone kept), ``returns``,
``gross_returns``, ``costs``, ``turnover`` and, when the run has positions, ``positions``
(a fixed-size list of one weight per asset). Asset labels, settings and the index name are
JSON in the schema metadata. Trades are not stored: they are the non-zero weight changes,
which are the differences of consecutive positions, exactly as the backtest computes them.

Appends are not fsynced (see :meth:`ArtifactStore.write`). Two processes storing the same
key write to their own packs, and the index row (inserted afterwards) names the one that
won. The row records the artifact's length and xxh3-128 checksum, and its bytes are parsed
only after they match both: a truncated, replaced or foreign file (or a link, a device) is
refused before pyarrow sees it.
Nothing here unpickles: Parquet is read column by column into numpy arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from foldwise._atomic import TEMP_SUFFIX, atomic_path
from foldwise._hashing import hash_bytes
from foldwise.backtest import BacktestResult, BacktestSettings
from foldwise.cache._readonly import read_only_error
from foldwise.errors import CacheArgumentError, CacheCorruptedError

__all__ = ["ARTIFACT_DIR", "LAYOUTS", "PACK_BYTES", "PACK_DIR", "ArtifactStore",
           "DirectoryScan", "file_of"]

ARTIFACT_DIR = "artifacts"
PACK_DIR = "packs"
#: Bytes after which a process starts a new pack file.
PACK_BYTES = 256 * 2**20
_PACK_FILE = re.compile(r"^packs/[0-9a-f]{32}\.pack$")
_PACK_RECORD = re.compile(r"^(packs/[0-9a-f]{32}\.pack)@(\d+)$")


def file_of(relpath: str) -> str:
    """The file an artifact lives in: its pack file, or the artifact file itself."""
    match = _PACK_RECORD.match(relpath)
    return match.group(1) if match else relpath
_FORMAT = 2  # 2: settings stored as BacktestSettings.to_dict()
_META_KEY = b"foldwise"
_SERIES = ("returns", "gross_returns", "costs", "turnover")
_NAME = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{32})-[0-9a-f]{8}\.parquet$")


@dataclass
class DirectoryScan:
    """The files found under a cache directory, by what they are (relative POSIX paths)."""

    artifacts: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


_COMPRESS_ABOVE = 1 << 20  # bytes of a table before compression is worth it


def checksum(data: Any) -> str:
    """xxh3-128 hex digest of a bytes-like object (the package's one hash family)."""
    return hash_bytes(data)


#: How new artifacts are written: appended to a pack of this process, or one file per run
#: (for file systems where appending to a shared file is not wanted; both are always read).
LAYOUTS = ("packs", "files")


class ArtifactStore:
    """Reads and writes the artifacts under one cache directory (owns no index).

    Parameters
    ----------
    directory
        The cache directory.
    layout
        ``"packs"`` (default) or ``"files"``: how new artifacts are written (both are read).
    """

    def __init__(self, directory: Path, layout: str = "packs") -> None:
        if layout not in LAYOUTS:
            raise CacheArgumentError(
                f"artifacts must be 'packs' (appended to a pack file per process) or 'files' "
                f"(one file per run), got {layout!r}.")
        self.directory = directory
        self.layout = layout
        self._lock = threading.Lock()
        self._pack: tuple[str, int, int, int] | None = None  # relpath, fd, size, pid

    def __del__(self) -> None:
        pack = getattr(self, "_pack", None)
        if pack is not None and pack[3] == os.getpid():
            with contextlib.suppress(OSError):
                os.close(pack[1])

    # --- paths ---------------------------------------------------------------------------

    def path(self, relpath: str) -> Path:
        """Absolute path of the file an artifact lives in (its pack, or its own file),
        refusing any name this store would not write."""
        record = _PACK_RECORD.match(relpath)
        if record is not None:
            return self.directory / record.group(1)
        name = relpath.removeprefix(f"{ARTIFACT_DIR}/")
        match = _NAME.match(name)
        if relpath == name or match is None or match.group(1) != match.group(2)[:2]:
            raise CacheCorruptedError(
                f"the index names an artifact {relpath!r}, which is not a file name foldwise "
                "writes; the index was altered. Run `foldwise cache verify --repair` to drop "
                "such rows.")
        return self.directory / relpath

    # --- writing ---------------------------------------------------------------------------

    def write(self, key: str, result: BacktestResult) -> tuple[str, str, int]:
        """Store ``result``'s arrays (appended to this process's pack, or in a file of its
        own); return (artifact name, checksum, length in bytes)."""
        table = _to_table(key, result)
        buffer = pa.BufferOutputStream()
        # zstd pays for itself on large panels; on a few thousand rows it costs more time
        # (~0.4 ms a file) than the ~10 % of bytes it saves.
        compression = "zstd" if table.nbytes > _COMPRESS_ABOVE else "none"
        # Artifacts are read whole, never filtered: column statistics and dictionary
        # encoding (useless on floats) only cost time — half of a small file's write.
        pq.write_table(table, buffer, compression=compression, use_dictionary=False,
                       write_statistics=False)
        data = buffer.getvalue()
        if self.layout == "files":
            return self._write_file(key, data)
        # Complete before the index row names it, so a process killed at any instant leaves
        # no row naming bytes not written. Not fsynced (an fsync costs more than the whole
        # write here): after a power cut a missing or damaged artifact fails its length /
        # checksum test and the entry is run again, so the index never serves a wrong
        # result.
        with self._lock:
            relpath, fd, offset = self._open_pack()
            try:
                written = os.write(fd, data)
                while written < data.size:  # a short write (rare): finish it
                    written += os.write(fd, memoryview(data)[written:])
            except OSError as exc:
                self._close_pack()  # its tail may be partial: the next write starts a pack
                refused = read_only_error(exc, self.directory)
                if refused is not None:
                    raise refused from exc
                # a write to an open file names no path (a full disk): name the pack
                raise OSError(exc.errno, exc.strerror, str(self.directory / relpath)) from exc
            self._pack = (relpath, fd, offset + data.size, os.getpid())
        return f"{relpath}@{offset}", checksum(data), data.size

    def _write_file(self, key: str, data: Any) -> tuple[str, str, int]:
        """Write ``data`` to a file of its own, complete under a temporary name and renamed
        into place before the index row names it."""
        relpath = f"{ARTIFACT_DIR}/{key[:2]}/{key}-{uuid.uuid4().hex[:8]}.parquet"
        target = self.directory / relpath
        try:
            with atomic_path(target, durable=False) as temporary, \
                    open(temporary, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            refused = read_only_error(exc, self.directory)
            if refused is not None:  # a read-only file system, permission denied
                raise refused from exc
            if exc.filename is not None:
                raise
            # a write to an open file names no path (a full disk): name the artifact's
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        return relpath, checksum(data), data.size

    def _open_pack(self) -> tuple[str, int, int]:
        """This process's pack (relative path, descriptor, size), a new one when there is
        none, it is full, or the process was forked (caller holds the lock)."""
        pack = self._pack
        if pack is not None and pack[3] == os.getpid() and pack[2] < PACK_BYTES:
            return pack[0], pack[1], pack[2]
        if pack is not None and pack[3] == os.getpid():
            self._close_pack()
        relpath = f"{PACK_DIR}/{uuid.uuid4().hex}.pack"
        path = self.directory / relpath
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as exc:
            refused = read_only_error(exc, self.directory)
            if refused is not None:
                raise refused from exc
            raise
        self._pack = (relpath, fd, 0, os.getpid())
        return relpath, fd, 0

    def _close_pack(self) -> None:
        pack, self._pack = self._pack, None
        if pack is not None and pack[3] == os.getpid():
            with contextlib.suppress(OSError):
                os.close(pack[1])

    def writing(self) -> str | None:
        """The pack this process is appending to, if any."""
        pack = self._pack
        return pack[0] if pack is not None and pack[3] == os.getpid() else None

    def remove(self, relpath: str) -> None:
        """Delete an artifact file if it is there. An artifact in a pack is left in place:
        the pack goes whole once no row names it (:meth:`remove_packs`)."""
        if _PACK_RECORD.match(relpath):
            self.path(relpath)  # validates the name
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(relpath))

    def remove_packs(self, named: set[str], grace: float) -> list[str]:
        """Delete the pack files no artifact in ``named`` (artifact names of the index's
        rows) lives in, except this process's current pack and packs written in the last
        ``grace`` seconds (another process may be appending to them). Return them."""
        directory = self.directory / PACK_DIR
        if not directory.is_dir():
            return []
        used = {file_of(name) for name in named}
        current = self.writing()
        now = time.time()
        removed = []
        for entry in os.scandir(directory):
            relpath = f"{PACK_DIR}/{entry.name}"
            if not _PACK_FILE.match(relpath) or relpath in used or relpath == current:
                continue
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat(follow_symlinks=False).st_mtime < grace:
                    continue
                os.unlink(entry.path)
                removed.append(relpath)
        return removed

    # --- reading ---------------------------------------------------------------------------

    def _read_checked(self, relpath: str, expected: str, n_bytes: int) -> bytes:
        """The artifact's bytes, if they are of the recorded length and checksum (in a pack,
        or a regular file of that size)."""
        record = _PACK_RECORD.match(relpath)
        if record is not None:
            return self._read_packed(self.directory / record.group(1), int(record.group(2)),
                                     expected, n_bytes)
        path = self.path(relpath)
        try:
            info = path.lstat()
        except FileNotFoundError:
            raise CacheCorruptedError(
                f"the artifact file {path} of this entry is gone (deleted by hand or by "
                "another process's eviction). The entry's metrics are still valid; run "
                "`foldwise cache verify --repair` to drop it, or just run it again.") from None
        # Size first, from the directory entry: a truncated file, a link or a device is
        # refused without reading it.
        if not stat.S_ISREG(info.st_mode) or info.st_size != n_bytes:
            raise CacheCorruptedError(
                f"the artifact file {path} is not what the index recorded ("
                f"{'not a regular file' if not stat.S_ISREG(info.st_mode) else f'{info.st_size} bytes, expected {n_bytes}'}"
                "): it was truncated or replaced. It was not opened. Run `foldwise cache "
                "verify --repair` to drop the entry.")
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # deleted between the two calls (an eviction)
            raise CacheCorruptedError(
                f"the artifact file {path} of this entry is gone (deleted by hand or by "
                "another process's eviction). The entry's metrics are still valid; run "
                "`foldwise cache verify --repair` to drop it, or just run it again.") from None
        if checksum(data) != expected:
            raise CacheCorruptedError(
                f"the artifact file {path} does not match the checksum recorded in the index: "
                "it is damaged or was replaced. It was not opened. Run `foldwise cache verify "
                "--repair` to drop the entry.")
        return data

    def _read_packed(self, path: Path, offset: int, expected: str, n_bytes: int) -> bytes:
        """``n_bytes`` at ``offset`` of the pack ``path``, if they match ``expected``."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise CacheCorruptedError(
                f"the pack file {path} of this entry is gone (deleted by hand). The entry's "
                "metrics are still valid; run `foldwise cache verify --repair` to drop it, or "
                "just run it again.") from None
        except OSError as exc:  # a link (O_NOFOLLOW) or unreadable
            raise CacheCorruptedError(
                f"the pack file {path} cannot be opened ({exc}); it was not read. Run "
                "`foldwise cache verify --repair` to drop its entries.") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size < offset + n_bytes:
                raise CacheCorruptedError(
                    f"the pack file {path} is not what the index recorded (it should hold "
                    f"{n_bytes} bytes at offset {offset}; it has {info.st_size}): it was "
                    "truncated or replaced. Run `foldwise cache verify --repair` to drop the "
                    "entry.")
            data = os.pread(fd, n_bytes, offset)
        finally:
            os.close(fd)
        if len(data) != n_bytes or checksum(data) != expected:
            raise CacheCorruptedError(
                f"the artifact at offset {offset} of the pack file {path} does not match the "
                "checksum recorded in the index: it is damaged. It was not parsed. Run "
                "`foldwise cache verify --repair` to drop the entry.")
        return data

    def check(self, relpath: str, expected: str, n_bytes: int) -> str | None:
        """Why the artifact is unusable (missing, damaged, unreadable), or None if it is fine."""
        try:
            data = self._read_checked(relpath, expected, n_bytes)
            pq.read_metadata(pa.BufferReader(data))
        except CacheCorruptedError as exc:
            return str(exc)
        except (pa.ArrowException, OSError) as exc:
            return f"is not a readable Parquet file ({exc})"
        return None

    def load(self, relpath: str, expected: str, n_bytes: int) -> BacktestResult:
        """Read a run back as a :class:`BacktestResult` with read-only arrays.

        Raises
        ------
        CacheCorruptedError
            The file is missing, not of ``n_bytes`` bytes, does not match ``expected``, or
            cannot be parsed.
        """
        data = self._read_checked(relpath, expected, n_bytes)
        try:
            table = pq.read_table(pa.BufferReader(data), use_threads=False)
            return _from_table(table)
        except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as exc:
            raise CacheCorruptedError(
                f"the artifact {relpath} matches its checksum but cannot be "
                f"read as a foldwise result ({type(exc).__name__}: {exc}); it was written by "
                "an incompatible version. Run `foldwise cache verify --repair`.") from exc

    # --- listing ---------------------------------------------------------------------------

    def scan(self, known: set[str]) -> DirectoryScan:
        """Classify every file under the cache directory without opening any.

        ``known`` holds the relative paths of the cache's own non-artifact files (the index).
        """
        scan = DirectoryScan()
        if not self.directory.is_dir():
            return scan
        for root, _dirs, files in os.walk(self.directory):
            for name in files:
                relpath = Path(root, name).relative_to(self.directory).as_posix()
                if relpath in known:
                    continue
                if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    scan.temporary.append(relpath)
                elif _PACK_FILE.match(relpath) or (
                        relpath.startswith(f"{ARTIFACT_DIR}/")
                        and _NAME.match(relpath.removeprefix(f"{ARTIFACT_DIR}/"))):
                    scan.artifacts.append(relpath)
                else:
                    scan.foreign.append(relpath)
        for found in (scan.artifacts, scan.temporary, scan.foreign):
            found.sort()
        return scan


def _to_table(key: str, result: BacktestResult) -> pa.Table:
    index = result.index
    tz = str(index.tz) if index.tz is not None else None
    columns: dict[str, pa.Array] = {
        "date": pa.array(index.asi8, type=pa.timestamp("ns", tz=tz)),
    }
    arrays = result.arrays
    for name, values in zip(_SERIES, (arrays.net, arrays.gross, arrays.costs,
                                      arrays.turnover), strict=True):
        columns[name] = pa.array(np.asarray(values, dtype=np.float64))
    positions = arrays.positions
    if positions is not None and positions.shape[1] > 0:
        flat = pa.array(np.ascontiguousarray(positions, dtype=np.float64).reshape(-1))
        columns["positions"] = pa.FixedSizeListArray.from_arrays(flat, positions.shape[1])
    meta = {
        "format": _FORMAT,
        "key": key,
        "assets": [str(a) for a in result.assets],
        "index_name": index.name if isinstance(index.name, str) else None,
        "tz": tz,
        "settings": result.settings.to_dict(),
    }
    table = pa.table(columns)
    text = json.dumps(meta, sort_keys=True, default=str, allow_nan=True)
    return table.replace_schema_metadata({_META_KEY: text.encode("utf-8")})


def _from_table(table: pa.Table) -> BacktestResult:
    meta = json.loads(table.schema.metadata[_META_KEY])
    if meta.get("format") != _FORMAT:
        raise ValueError(f"artifact format {meta.get('format')!r}, expected {_FORMAT}")
    stamps = table.column("date").cast(pa.int64()).to_numpy().view("M8[ns]")
    index = pd.DatetimeIndex(stamps, name=meta["index_name"])
    if meta["tz"] is not None:
        index = index.tz_localize("UTC").tz_convert(meta["tz"])

    def column(name: str) -> np.ndarray:
        values = np.asarray(table.column(name).to_numpy(), dtype=np.float64)
        values.flags.writeable = False
        return values

    net, gross, costs, turnover = (column(name) for name in _SERIES)
    assets = pd.Index(meta["assets"], dtype=object)
    positions = changes = None
    if "positions" in table.column_names:
        flat = table.column("positions").combine_chunks().flatten().to_numpy()
        positions = np.asarray(flat, dtype=np.float64).reshape(len(index), len(assets))
        changes = np.diff(positions, axis=0, prepend=0.0)
        positions.flags.writeable = changes.flags.writeable = False
    return BacktestResult(index=index, assets=assets, net=net, gross=gross, costs=costs,
                          turnover=turnover, positions=positions, changes=changes,
                          settings=BacktestSettings.from_dict(meta["settings"]))
