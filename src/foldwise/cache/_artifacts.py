"""Artifacts: the arrays of a full run, as Parquet, stored through pyarrow's file systems.

Where they live: the cache directory by default, or any location a
:class:`pyarrow.fs.FileSystem` reaches — a shared mount, or an object store URL such as
``s3://bucket/prefix?endpoint_override=host:9000`` (S3, GCS, HDFS and ``file://`` are built
into pyarrow; anything fsspec reaches works through ``pyarrow.fs.PyFileSystem``). Every byte
goes through the :class:`pyarrow.fs.FileSystem` API, the local directory included, so a new
kind of location needs no code here. Layout under the location::

    packs/<32 hex>.pack                                   (layout "packs")
    artifacts/<first 2 hex of key>/<key>-<8 hex>.parquet  (layout "files")

**Packs** (the default on a local file system): a process appends every artifact it writes
to its own pack file (a new one per process and per :data:`PACK_BYTES`), so storing a run
is one ``write`` to an open file instead of the creation, write and rename of a new file,
which cost more than a fast strategy's whole backtest. An artifact is named
``packs/<name>.pack@<offset>``; its length and checksum are in the index row. Appends are
complete before the index row that names them is inserted (so no row names bytes not yet
written), and a process killed mid-append leaves bytes no row names. Nothing in a pack is
ever overwritten: a pack file is deleted whole once no row names any of its artifacts and it
has not been written for ten minutes (eviction, ``clear``, ``verify --repair``), so evicting
part of a pack frees its space when the rest of it goes; runs stored together (one
optimization) usually age together.

**Files** (the default where appending is not possible, as on object stores): one object
per run, complete before the index row names it: written under a temporary name and moved
into place, or, on an object store (S3, GCS, Azure), uploaded under its final name, since
an object appears only once its upload completes and a move there is a second copy.

One table per run, one row per bar: ``date`` (timestamp, time zone kept), ``returns``,
``gross_returns``, ``costs``, ``turnover`` and, when the run has positions, ``positions``
(a fixed-size list of one weight per asset). Asset labels, settings and the index name are
JSON in the schema metadata. Trades are not stored: they are the non-zero weight changes,
which are the differences of consecutive positions, exactly as the backtest computes them.

An artifact in **returns form** (:class:`~foldwise.cache._returns.RunReturns`, written with
``positions=False``) holds ``trades``, the number of weight changes per bar, instead of the
positions: what the metrics of any window and the statistics across runs need, at a tenth
of the size for a panel of 40 assets. Its name says so (``packs/<name>.pack@<offset>+returns``,
``artifacts/../<key>-<8 hex>.returns.parquet``), so a reader that needs the positions knows
without reading it that the run must be run again (:func:`holds_positions`), and a foldwise
older than this form refuses the name instead of reading the run as one without positions.

Writes are not fsynced (see :meth:`ArtifactStore.write`). Two processes storing the same
key write their own bytes, and the index row (inserted afterwards) names the one that won.
The row records the artifact's length and xxh3-128 checksum, and its bytes are parsed only
after they match both: a truncated, replaced or foreign file (or a link to a device, a
pipe) is refused before pyarrow's Parquet reader sees it.
Nothing here unpickles: Parquet is read column by column into numpy arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from foldwise._atomic import TEMP_SUFFIX
from foldwise._hashing import hash_bytes
from foldwise.backtest import BacktestResult, BacktestSettings
from foldwise.cache._readonly import read_only_error
from foldwise.cache._returns import RunReturns
from foldwise.errors import CacheArgumentError, CacheCorruptedError

__all__ = ["ARTIFACT_DIR", "LAYOUTS", "PACK_BYTES", "PACK_DIR", "ArtifactLocation",
           "ArtifactStore", "DirectoryScan", "file_of", "holds_positions"]

ARTIFACT_DIR = "artifacts"
PACK_DIR = "packs"
#: Bytes after which a process starts a new pack file.
PACK_BYTES = 256 * 2**20
_PACK_FILE = re.compile(r"^packs/[0-9a-f]{32}\.pack$")
_PACK_RECORD = re.compile(r"^(packs/[0-9a-f]{32}\.pack)@(\d+)(\+returns)?$")
_RETURNS_MARK = "+returns"  # ends the name of a pack record in returns form


def file_of(relpath: str) -> str:
    """The file an artifact lives in: its pack file, or the artifact file itself."""
    match = _PACK_RECORD.match(relpath)
    return match.group(1) if match else relpath


def holds_positions(relpath: str) -> bool:
    """Whether the artifact named ``relpath`` holds the run's positions (else it is in
    returns form: see the module docstring)."""
    return not relpath.endswith((_RETURNS_MARK, _RETURNS_SUFFIX))


_FORMAT = 2  # 2: settings stored as BacktestSettings.to_dict()
_META_KEY = b"foldwise"
_SERIES = ("returns", "gross_returns", "costs", "turnover")
_NAME = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{32})-[0-9a-f]{8}(\.returns)?\.parquet$")
_RETURNS_SUFFIX = ".returns.parquet"  # ends the name of an artifact file in returns form
_COMPRESS_ABOVE = 1 << 20  # bytes of a table before compression is worth it
#: How new artifacts are written: appended to a pack of this process, or one file per run
#: (object stores, which cannot append; shared file systems where files several hosts read
#: should not grow). Both are always read.
LAYOUTS = ("packs", "files")
#: pyarrow file system types whose uploads are atomic (S3, Google Cloud Storage, Azure).
_OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})


@dataclass
class DirectoryScan:
    """The files found under an artifact location, by what they are (relative POSIX paths)."""

    artifacts: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    #: Modification time (seconds since the epoch) and size of each file found.
    found: dict[str, tuple[float, int]] = field(default_factory=dict)


def checksum(data: Any) -> str:
    """xxh3-128 hex digest of a bytes-like object (the package's one hash family)."""
    return hash_bytes(data)


@dataclass(frozen=True)
class ArtifactLocation:
    """Where artifacts live: a pyarrow file system and a base path in it.

    Build one with :meth:`resolve`; ``spec`` is what the user gave (kept so a cache sent to
    a worker process opens the same location there).
    """

    filesystem: pafs.FileSystem
    base: str
    spec: Any
    description: str

    @classmethod
    def resolve(cls, spec: str | os.PathLike[str] | pafs.FileSystem | None,
                directory: Path) -> ArtifactLocation:
        """The location ``spec`` names: None for ``directory`` (the cache directory); a
        local path; a URL pyarrow knows (``s3://bucket/prefix``, ``gs://…``,
        ``hdfs://…``, ``file:///…``); or a :class:`pyarrow.fs.FileSystem`, whose root is
        used (wrap it in :class:`pyarrow.fs.SubTreeFileSystem` for a prefix)."""
        if spec is None:
            return cls(pafs.LocalFileSystem(), directory.absolute().as_posix(), None,
                       str(directory))
        if isinstance(spec, pafs.FileSystem):
            shown = (f"{spec.base_path.rstrip('/')} ({spec.base_fs.type_name} file system)"
                     if isinstance(spec, pafs.SubTreeFileSystem)
                     else f"the root of a {spec.type_name} file system")
            return cls(spec, "", spec, shown)
        if not isinstance(spec, (str, os.PathLike)):
            raise CacheArgumentError(
                "artifact_location must be a path, a URL (s3://bucket/prefix, file:///path) "
                f"or a pyarrow.fs.FileSystem; got {type(spec).__name__}.")
        text = os.fspath(spec)
        if "://" not in text:
            path = Path(text).expanduser().absolute()
            return cls(pafs.LocalFileSystem(), path.as_posix(), text, str(path))
        parts = urlsplit(text)
        # never print what the URL may carry after the host: keys in the query, a password
        shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        try:
            filesystem, base = pafs.FileSystem.from_uri(text)
        except (pa.ArrowException, OSError, ValueError) as exc:
            why = str(exc).replace(text, shown)  # pyarrow repeats the URL, secrets and all
            raise CacheArgumentError(
                f"cannot open the artifact location {shown}: {why}. Give a local path or a "
                "URL pyarrow.fs.FileSystem.from_uri reads (s3://bucket/prefix?region=..., "
                "gs://bucket/prefix, hdfs://host/path, file:///path), or pass a "
                "pyarrow.fs.FileSystem object.") from None
        return cls(filesystem, base.rstrip("/"), text, shown)

    @property
    def local_path(self) -> Path | None:
        """The directory on this host, when the location is one."""
        if isinstance(self.filesystem, pafs.LocalFileSystem) and self.base:
            return Path(self.base)
        return None

    @property
    def can_append(self) -> bool:
        """True where pack files can be used (a local or mounted file system)."""
        filesystem = self.filesystem
        while isinstance(filesystem, pafs.SubTreeFileSystem):
            filesystem = filesystem.base_fs
        return isinstance(filesystem, pafs.LocalFileSystem)

    @property
    def atomic_uploads(self) -> bool:
        """True on object stores, where an object appears whole once its upload completes
        (never in part): a new artifact is uploaded under its final name, where a move
        would copy it a second time."""
        return self.filesystem.type_name in _OBJECT_STORES

    def full(self, relpath: str) -> str:
        """The file system path of ``relpath`` (relative to the location)."""
        return f"{self.base}/{relpath}" if self.base else relpath

    def where(self, relpath: str) -> str:
        """``relpath`` as shown in messages."""
        return f"{self.description.rstrip('/')}/{relpath}"


class ArtifactStore:
    """Reads and writes the artifacts at one location (owns no index).

    Parameters
    ----------
    location
        Where the artifacts live (:meth:`ArtifactLocation.resolve`).
    layout
        ``"packs"`` or ``"files"``: how new artifacts are written (both are read); None
        for packs where the file system can append, files elsewhere.
    """

    def __init__(self, location: ArtifactLocation, layout: str | None = None) -> None:
        if layout is None:
            layout = "packs" if location.can_append else "files"
        if layout not in LAYOUTS:
            raise CacheArgumentError(
                f"artifacts must be 'packs' (appended to a pack file per process) or 'files' "
                f"(one file per run), got {layout!r}.")
        if layout == "packs" and not location.can_append:
            raise CacheArgumentError(
                f"artifacts='packs' appends to files, which {location.description} (a "
                f"{location.filesystem.type_name} file system) cannot do; use "
                "artifacts='files' (the default there).")
        self.location = location
        self.filesystem = location.filesystem
        self.layout = layout
        self._lock = threading.Lock()
        self._pack: tuple[str, Any, int, int] | None = None  # relpath, stream, size, pid
        self._made: set[str] = set()  # directories created by this object

    def __del__(self) -> None:
        pack = getattr(self, "_pack", None)
        if pack is not None and pack[3] == os.getpid():
            with contextlib.suppress(OSError, pa.ArrowException):
                pack[1].close()

    # --- paths ---------------------------------------------------------------------------

    def _checked_name(self, relpath: str) -> str:
        """The file ``relpath`` lives in (its pack, or its own file), refusing any name
        this store would not write."""
        record = _PACK_RECORD.match(relpath)
        if record is not None:
            return record.group(1)
        name = relpath.removeprefix(f"{ARTIFACT_DIR}/")
        match = _NAME.match(name)
        if relpath == name or match is None or match.group(1) != match.group(2)[:2]:
            raise CacheCorruptedError(
                f"the index names an artifact {relpath!r}, which is not a file name foldwise "
                "writes; the index was altered. Run `foldwise cache verify --repair` to drop "
                "such rows.")
        return relpath

    def exists(self, relpath: str) -> bool:
        """True when the file an artifact lives in is there (whatever it holds).

        Raises
        ------
        CacheCorruptedError
            ``relpath`` is not a name this store writes.
        """
        name = self._checked_name(relpath)
        info = self.filesystem.get_file_info(self.location.full(name))
        return bool(info.type != pafs.FileType.NotFound)

    # --- writing ---------------------------------------------------------------------------

    def write(self, key: str, result: BacktestResult, positions: bool = True
              ) -> tuple[str, str, int]:
        """Store ``result``'s arrays (appended to this process's pack, or in a file of its
        own), with its positions or in returns form (``positions=False``); return
        (artifact name, checksum, length in bytes)."""
        table = _to_table(key, result, positions)
        buffer = pa.BufferOutputStream()
        # zstd pays for itself on large panels; on a few thousand rows it costs more time
        # (~0.4 ms a file) than the ~10 % of bytes it saves. The returns form is written
        # for most runs of a study: lz4 takes 40 % off it (costs and turnover are mostly
        # zero) for 0.05-0.1 ms a run (measured: 401 -> 251 KB for 33 years of dates).
        compression = ("zstd" if table.nbytes > _COMPRESS_ABOVE
                       else "none" if positions else "lz4")
        # Artifacts are read whole, never filtered: column statistics and dictionary
        # encoding (useless on floats) only cost time — half of a small file's write.
        pq.write_table(table, buffer, compression=compression, use_dictionary=False,
                       write_statistics=False)
        data = buffer.getvalue()
        if self.layout == "files":
            return self._write_file(key, data, ".parquet" if positions else _RETURNS_SUFFIX)
        # Complete before the index row names it, so a process killed at any instant leaves
        # no row naming bytes not written. Not fsynced (an fsync costs more than the whole
        # write here): after a power cut a missing or damaged artifact fails its length /
        # checksum test and the entry is run again, so the index never serves a wrong
        # result.
        with self._lock:
            relpath, stream, offset = self._open_pack()
            try:
                stream.write(data)
            except OSError as exc:
                self._close_pack()  # its tail may be partial: the next write starts a pack
                raise self._write_error(exc, relpath) from exc
            self._pack = (relpath, stream, offset + data.size, os.getpid())
        mark = "" if positions else _RETURNS_MARK
        return f"{relpath}@{offset}{mark}", checksum(data), data.size

    def _write_error(self, exc: OSError, relpath: str) -> Exception:
        """What a failed write of ``relpath`` raises: a read-only cache's error, or the
        ``OSError`` naming the file (a write to an open file names none: a full disk)."""
        local = self.location.local_path
        if local is not None:
            refused = read_only_error(exc, local)
            if refused is not None:  # a read-only file system, permission denied
                return refused
        return OSError(exc.errno, exc.strerror or str(exc), self.location.where(relpath))

    def _make_parent(self, relpath: str) -> None:
        parent = relpath.rpartition("/")[0]
        if parent not in self._made:  # one call per directory and process, not per write
            self.filesystem.create_dir(self.location.full(parent), recursive=True)
            self._made.add(parent)

    def _write_file(self, key: str, data: Any, suffix: str) -> tuple[str, str, int]:
        """Write ``data`` to a file of its own, complete before the index row names it:
        under a temporary name moved into place, or on an object store uploaded under its
        final name (the object appears when the upload completes)."""
        relpath = f"{ARTIFACT_DIR}/{key[:2]}/{key}-{uuid.uuid4().hex[:8]}{suffix}"
        folder, _, name = relpath.rpartition("/")
        direct = self.location.atomic_uploads
        temporary = relpath if direct else f"{folder}/.{name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        full = self.location.full
        try:
            self._make_parent(relpath)
            try:
                with self.filesystem.open_output_stream(full(temporary),
                                                        compression=None) as stream:
                    stream.write(data)
                if not direct:
                    self.filesystem.move(full(temporary), full(relpath))
            except BaseException:
                with contextlib.suppress(OSError, pa.ArrowException):
                    self.filesystem.delete_file(full(temporary))
                raise
        except OSError as exc:
            raise self._write_error(exc, relpath) from exc
        return relpath, checksum(data), data.size

    def _open_pack(self) -> tuple[str, Any, int]:
        """This process's pack (relative path, stream, size), a new one when there is
        none, it is full, or the process was forked (caller holds the lock)."""
        pack = self._pack
        if pack is not None and pack[3] == os.getpid() and pack[2] < PACK_BYTES:
            return pack[0], pack[1], pack[2]
        if pack is not None and pack[3] == os.getpid():
            self._close_pack()
        relpath = f"{PACK_DIR}/{uuid.uuid4().hex}.pack"  # a new name: never appended to before
        try:
            self._make_parent(relpath)
            stream = self.filesystem.open_append_stream(self.location.full(relpath),
                                                        compression=None, buffer_size=0)
        except OSError as exc:
            raise self._write_error(exc, relpath) from exc
        self._pack = (relpath, stream, 0, os.getpid())
        return relpath, stream, 0

    def _close_pack(self) -> None:
        pack, self._pack = self._pack, None
        if pack is not None and pack[3] == os.getpid():
            with contextlib.suppress(OSError, pa.ArrowException):
                pack[1].close()

    def writing(self) -> str | None:
        """The pack this process is appending to, if any."""
        pack = self._pack
        return pack[0] if pack is not None and pack[3] == os.getpid() else None

    # --- deleting --------------------------------------------------------------------------

    def _delete(self, relpath: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_file(self.location.full(relpath))

    def remove(self, relpath: str) -> None:
        """Delete an artifact file if it is there. An artifact in a pack is left in place:
        the pack goes whole once no row names it (:meth:`remove_packs`)."""
        name = self._checked_name(relpath)
        if name == relpath:
            self._delete(relpath)

    def remove_packs(self, named: set[str], grace: float) -> list[str]:
        """Delete the pack files no artifact in ``named`` (artifact names of the index's
        rows) lives in, except this process's current pack and packs written in the last
        ``grace`` seconds (another process may be appending to them). Return them."""
        used = {file_of(name) for name in named}
        current = self.writing()
        unused = [relpath for relpath in self.scan(set(), under=PACK_DIR).found
                  if _PACK_FILE.match(relpath) and relpath not in used and relpath != current]
        return self.sweep(unused, grace)

    def sweep(self, relpaths: list[str], grace: float) -> list[str]:
        """Delete the given files that were last written more than ``grace`` seconds ago
        (younger ones may belong to a process writing right now); return those deleted."""
        if not relpaths:
            return []
        cutoff = time.time() - grace
        infos = self.filesystem.get_file_info([self.location.full(r) for r in relpaths])
        removed = []
        for relpath, info in zip(relpaths, infos, strict=True):
            if info.type == pafs.FileType.NotFound or info.type == pafs.FileType.Directory:
                continue
            if info.mtime is None and grace > 0:
                continue  # its age is unknown: it may be a write in progress
            if info.mtime is None or info.mtime.timestamp() <= cutoff:
                self._delete(relpath)
                removed.append(relpath)
        return removed

    # --- reading ---------------------------------------------------------------------------

    def _read_checked(self, relpath: str, expected: str, n_bytes: int) -> bytes:
        """The artifact's bytes, if they are of the recorded length and checksum (in a pack,
        or a regular file of that size)."""
        record = _PACK_RECORD.match(relpath)
        packed = record is not None
        name = record.group(1) if record is not None else self._checked_name(relpath)
        offset = int(record.group(2)) if record is not None else 0
        what = "pack file" if packed else "artifact file"
        where = self.location.where(name)
        gone = CacheCorruptedError(
            f"the {what} {where} of this entry is gone (deleted by hand or by another "
            "process's eviction). The entry's metrics are still valid; run `foldwise cache "
            "verify --repair` to drop it, or just run it again.")
        # Type and size first, from the directory entry: a truncated file, a link to a
        # device or a pipe is refused without opening it.
        info = self.filesystem.get_file_info(self.location.full(name))
        if info.type == pafs.FileType.NotFound:
            raise gone
        fits = info.size is not None and (info.size >= offset + n_bytes if packed
                                          else info.size == n_bytes)
        if info.type != pafs.FileType.File or not fits:
            found = ("not a regular file" if info.type != pafs.FileType.File
                     else f"{info.size} bytes, expected "
                     + (f"{n_bytes} at offset {offset}" if packed else f"{n_bytes}"))
            raise CacheCorruptedError(
                f"the {what} {where} is not what the index recorded ({found}): it was "
                "truncated or replaced. It was not opened. Run `foldwise cache verify "
                "--repair` to drop the entry.")
        try:
            with self.filesystem.open_input_file(info.path) as handle:
                data = handle.read_at(n_bytes, offset)
        except FileNotFoundError:  # deleted between the two calls (an eviction)
            raise gone from None
        # any other OSError (permissions, an unreachable store) is a fault of the machine,
        # not damage: raised as it is, so nothing is dropped or run again for it
        if len(data) != n_bytes or checksum(data) != expected:
            at = f"the artifact at offset {offset} of the pack file" if packed else \
                "the artifact file"
            raise CacheCorruptedError(
                f"{at} {where} does not match the checksum recorded in the index: it is "
                "damaged or was replaced. It was not parsed. Run `foldwise cache verify "
                "--repair` to drop the entry.")
        return bytes(data)

    def check(self, relpath: str, expected: str, n_bytes: int) -> str | None:
        """Why the artifact is unusable (missing, damaged, unreadable), or None if it is fine."""
        try:
            data = self._read_checked(relpath, expected, n_bytes)
        except CacheCorruptedError as exc:
            return str(exc)
        # (an OSError reading it is a fault of the machine, raised: not damage)
        try:
            pq.read_metadata(pa.BufferReader(data))
        except (pa.ArrowException, OSError) as exc:  # parsing bytes in memory
            return f"is not a readable Parquet file ({exc})"
        return None

    def load(self, relpath: str, expected: str, n_bytes: int) -> BacktestResult:
        """Read a run back as a :class:`BacktestResult` with read-only arrays (an artifact
        with positions: :func:`holds_positions`).

        Raises
        ------
        CacheCorruptedError
            The file is missing, not of ``n_bytes`` bytes, does not match ``expected``, or
            cannot be parsed.
        """
        result = self._load(relpath, expected, n_bytes)
        if not isinstance(result, BacktestResult):
            raise CacheArgumentError(f"the artifact {relpath} is in returns form: it holds no "
                                     "positions to make a BacktestResult of")
        return result

    def load_returns(self, relpath: str, expected: str, n_bytes: int) -> RunReturns:
        """Read a run's returns form back (from an artifact in either form).

        Raises
        ------
        CacheCorruptedError
            As :meth:`load`.
        """
        result = self._load(relpath, expected, n_bytes)
        return result if isinstance(result, RunReturns) else RunReturns.of(result)

    def _load(self, relpath: str, expected: str, n_bytes: int) -> BacktestResult | RunReturns:
        data = self._read_checked(relpath, expected, n_bytes)
        try:
            table = pq.read_table(pa.BufferReader(data), use_threads=False)
            loaded = _from_table(table)
        except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as exc:
            raise CacheCorruptedError(
                f"the artifact {relpath} matches its checksum but cannot be "
                f"read as a foldwise result ({type(exc).__name__}: {exc}); it was written by "
                "an incompatible version. Run `foldwise cache verify --repair`.") from exc
        if isinstance(loaded, RunReturns) == holds_positions(relpath):
            raise CacheCorruptedError(
                f"the artifact {relpath} matches its checksum but its name and its contents "
                "disagree on whether it holds the run's positions; the index was altered. "
                "Run `foldwise cache verify --repair` to drop the entry.")
        return loaded

    # --- listing ---------------------------------------------------------------------------

    def scan(self, known: set[str], under: str = "") -> DirectoryScan:
        """Classify every file at the location (or in its folder ``under``) without opening
        any. ``known`` holds the relative paths of the cache's own non-artifact files (the
        index, when it shares the directory)."""
        scan = DirectoryScan()
        location = self.location
        top = location.full(under) if under else location.base
        # some file systems answer "/name" for "name" (fsspec's memory one): compare
        # without leading slashes
        prefix = f"{location.base}/".lstrip("/") if location.base else ""
        selector = pafs.FileSelector(top, recursive=True, allow_not_found=True)
        for info in self.filesystem.get_file_info(selector):
            if info.type == pafs.FileType.Directory:
                continue
            relpath = info.path.lstrip("/").removeprefix(prefix)
            if relpath in known:
                continue
            name = relpath.rpartition("/")[2]
            scan.found[relpath] = (info.mtime.timestamp() if info.mtime is not None else 0.0,
                                   info.size or 0)
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


def _to_table(key: str, result: BacktestResult, positions: bool = True) -> pa.Table:
    index = result.index
    tz = str(index.tz) if index.tz is not None else None
    columns: dict[str, pa.Array] = {
        "date": pa.array(index.asi8, type=pa.timestamp("ns", tz=tz)),
    }
    arrays = result.arrays
    for name, values in zip(_SERIES, (arrays.net, arrays.gross, arrays.costs,
                                      arrays.turnover), strict=True):
        columns[name] = pa.array(np.asarray(values, dtype=np.float64))
    held = arrays.positions
    if not positions:
        columns["trades"] = pa.array(RunReturns.of(result).trades)
    elif held is not None and held.shape[1] > 0:
        flat = pa.array(np.ascontiguousarray(held, dtype=np.float64).reshape(-1))
        columns["positions"] = pa.FixedSizeListArray.from_arrays(flat, held.shape[1])
    meta = {
        "format": _FORMAT,
        "key": key,
        "assets": [str(a) for a in result.assets],
        "index_name": index.name if isinstance(index.name, str) else None,
        "tz": tz,
        "settings": result.settings.to_dict(),
    }
    if not positions:
        meta["form"] = "returns"
    table = pa.table(columns)
    text = json.dumps(meta, sort_keys=True, default=str, allow_nan=True)
    return table.replace_schema_metadata({_META_KEY: text.encode("utf-8")})


def _from_table(table: pa.Table) -> BacktestResult | RunReturns:
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
    settings = BacktestSettings.from_dict(meta["settings"])
    if meta.get("form") == "returns":
        trades = np.asarray(table.column("trades").to_numpy(), dtype=np.int64)
        trades.flags.writeable = False
        return RunReturns(index, net, gross, costs, turnover, trades, settings)
    assets = pd.Index(meta["assets"], dtype=object)
    positions = changes = None
    if "positions" in table.column_names:
        flat = table.column("positions").combine_chunks().flatten().to_numpy()
        positions = np.asarray(flat, dtype=np.float64).reshape(len(index), len(assets))
        changes = np.diff(positions, axis=0, prepend=0.0)
        positions.flags.writeable = changes.flags.writeable = False
    return BacktestResult(index=index, assets=assets, net=net, gross=gross, costs=costs,
                          turnover=turnover, positions=positions, changes=changes,
                          settings=settings)
