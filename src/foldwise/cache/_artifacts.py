"""Artifact files: the arrays of a full run, one Parquet file per run.

Layout under the cache directory::

    artifacts/<first 2 hex of key>/<key>-<8 hex>.parquet

One table per run, one row per bar: ``date`` (timestamp, time zone kept), ``returns``,
``gross_returns``, ``costs``, ``turnover`` and, when the run has positions, ``positions``
(a fixed-size list of one weight per asset). Asset labels, settings and the index name are
JSON in the schema metadata. Trades are not stored: they are the non-zero weight changes,
which are the differences of consecutive positions, exactly as the backtest computes them.

A file is written to a unique temporary name and renamed into place (see
:mod:`foldwise._atomic`; not fsynced, see :meth:`ArtifactStore.write`); its name carries a random tag, so two processes storing the same
key never write the same file, and the index row (inserted afterwards) names the one that
won. The row also records the file's size and xxh3-128 checksum, and a file is parsed only
after it matches both: a truncated, replaced or foreign file (or a link, a device) is
refused before pyarrow sees it.
Nothing here unpickles: Parquet is read column by column into numpy arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
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
from foldwise.errors import CacheCorruptedError

__all__ = ["ARTIFACT_DIR", "ArtifactStore", "DirectoryScan"]

ARTIFACT_DIR = "artifacts"
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


class ArtifactStore:
    """Reads and writes the artifact files under one cache directory (owns no index)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    # --- paths ---------------------------------------------------------------------------

    def path(self, relpath: str) -> Path:
        """Absolute path of an artifact, refusing any name this store would not write."""
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
        """Store ``result``'s arrays; return (relative path, checksum, size in bytes)."""
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
        relpath = f"{ARTIFACT_DIR}/{key[:2]}/{key}-{uuid.uuid4().hex[:8]}.parquet"
        # Complete and renamed into place before the index row names it, so a process
        # killed at any instant leaves no row naming a partial file. Not fsynced (an fsync
        # costs more than the whole write here): after a power cut a missing or damaged
        # artifact fails its size / checksum test and the entry is run again, so the index
        # never serves a wrong result.
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

    def remove(self, relpath: str) -> None:
        """Delete an artifact file if it is there."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(relpath))

    # --- reading ---------------------------------------------------------------------------

    def _read_checked(self, relpath: str, expected: str, n_bytes: int) -> bytes:
        """The file's bytes, if it is a regular file of the recorded size and checksum."""
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
                f"the artifact file {self.path(relpath)} matches its checksum but cannot be "
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
                elif _NAME.match(relpath.removeprefix(f"{ARTIFACT_DIR}/")) and relpath.startswith(
                        f"{ARTIFACT_DIR}/"):
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
