"""Snapshots of journal studies: a study read back without replaying its journal.

Reading an optimization back from a journal file means replaying every line of the file
into Optuna's in-memory model and turning the trials into foldwise records: 5.3 s of the
15 s ``foldwise show`` took for a 20-fold x 1,000-trial study (122,440 lines, 33 MB).
The :class:`~foldwise.records.StudyRecord` that comes out of it is a few megabytes of
JSON, read back in a fraction of that time.

A **snapshot** is that record, stored beside the journal
(``<journal>.snapshots/<digest of the study name>.json``) under the journal's content key:
the number of bytes the replay had read, and the xxh3-128 of those bytes. A reader hashes
the journal (about 10 ms for 33 MB) and uses the snapshot only when the file is exactly
those bytes. Any append (a trial of this study or of another one in the same file), a
repair or a rewrite makes it stale: the study is replayed as before and the snapshot
written again. A snapshot therefore never shows a stale study, and deleting one costs the
next reader one replay.

Written by :func:`foldwise.optimize` at its end and by :func:`foldwise.load_result` after a
replay, only when the record was read from one unchanging stretch of the journal (no other
process appended while it was read), atomically (a reader sees the old snapshot or the
whole new one). A snapshot that cannot be written (a read-only directory, a full disk) is
skipped with a log line: it is a convenience of readers, never a reason for one to fail.
A snapshot that cannot be read (damaged, or written by another foldwise version) is
ignored and replaced.

Other storages (PostgreSQL, SQLite, memory) are read from the storage every time: they
have no cheap content key.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import xxhash

from foldwise._atomic import atomic_path
from foldwise._hashing import hash_text
from foldwise._version import __version__
from foldwise.records import StudyRecord
from foldwise.storage import FileJournalBackend, StorageSpec

__all__ = ["SNAPSHOT_SUFFIX", "STATISTICS_DIR", "StatisticsFile", "journal_bytes_read",
           "read_snapshot", "snapshot_path", "source_digest", "write_snapshot_after_read"]

logger = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".snapshots"
#: Version of the snapshot file; with foldwise's version part of every snapshot's key, so a
#: snapshot another foldwise wrote is replayed rather than trusted.
_FORMAT = 1
_CHUNK = 1 << 23  # bytes hashed per read: bounded memory for any journal


def snapshot_path(journal: str | os.PathLike[str], study: str) -> Path:
    """Where the snapshot of ``study`` in the journal file ``journal`` is kept."""
    journal = Path(journal)
    return journal.with_name(journal.name + SNAPSHOT_SUFFIX) / f"{hash_text(study)[:32]}.json"


def _journal_digest(journal: Path, length: int) -> str | None:
    """The xxh3-128 of the first ``length`` bytes of ``journal``; None when it is shorter."""
    hasher = xxhash.xxh3_128()
    with open(journal, "rb") as file:
        left = length
        while left > 0:
            chunk = file.read(min(left, _CHUNK))
            if not chunk:
                return None
            hasher.update(chunk)
            left -= len(chunk)
    return hasher.hexdigest()


def _key(journal: Path, length: int) -> dict[str, Any] | None:
    digest = _journal_digest(journal, length)
    if digest is None:
        return None
    return {"format": _FORMAT, "foldwise": __version__, "length": length, "xxh3": digest}


def read_snapshot(spec: StorageSpec, study: str) -> StudyRecord | None:
    """The record of ``study`` from its snapshot, or None when there is no valid one (the
    journal changed since, no snapshot, or one that cannot be read)."""
    if spec.kind != "journal":
        return None
    journal = Path(spec.location)
    path = snapshot_path(journal, study)
    try:
        with open(path, "rb") as file:
            stored = json.loads(file.read())
        key = stored["key"]
        if key.get("format") != _FORMAT or key.get("foldwise") != __version__:
            return None
        if os.stat(journal).st_size != key["length"] or _key(journal, key["length"]) != key:
            return None  # the journal changed since (appended, repaired or replaced)
        if stored["study"] != study:
            return None
        return StudyRecord.from_json(stored["record"], location=str(spec),
                                     content_digest=str(stored["digest"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.info("study %r: snapshot %s not used (%s); reading the journal", study, path, exc)
        return None


def _journal_backend(storage: optuna.storages.BaseStorage) -> FileJournalBackend | None:
    backend = getattr(storage, "_backend", None)
    return backend if isinstance(backend, FileJournalBackend) else None


def journal_bytes_read(storage: optuna.storages.BaseStorage) -> int | None:
    """Bytes of its journal file that ``storage`` has replayed, after reading what is new;
    None for a storage that is not a foldwise journal file."""
    backend = _journal_backend(storage)
    if backend is None:
        return None
    storage.get_all_studies()  # a journal storage replays what was appended since
    return backend.bytes_read


def write_snapshot_after_read(spec: StorageSpec, storage: optuna.storages.BaseStorage,
                              record: StudyRecord, read_from: int | None) -> StudyRecord:
    """Keep ``record`` as the snapshot of its study, when it was read from one unchanging
    stretch of the journal: ``read_from`` (:func:`journal_bytes_read` before the record was
    read) is what ``storage`` has replayed after it too. Returns the record, with its
    :attr:`~foldwise.records.StudyRecord.content_digest` when a snapshot was written."""
    backend = _journal_backend(storage)
    if spec.kind != "journal" or backend is None or read_from is None:
        return record
    if backend.bytes_read != read_from:
        return record  # another process appended while it was read: no single key fits it
    journal = Path(spec.location)
    path = snapshot_path(journal, record.name)
    try:
        key = _key(journal, read_from)
        if key is None:
            return record
        record_text = record.to_text()
        digest = hash_text(record_text)
        head = json.dumps({"key": key, "study": record.name, "digest": digest})
        with atomic_path(path, durable=False) as temporary:
            temporary.write_text(f'{head[:-1]}, "record": {record_text}}}', encoding="utf-8")
    except OSError as exc:
        logger.info("study %r: no snapshot written to %s (%s); readers replay the journal",
                    record.name, path, exc)
        return record
    return replace(record, content_digest=digest)


# --- computed statistics ----------------------------------------------------------------------

STATISTICS_DIR = "statistics"
_source_digest: str | None = None


def source_digest() -> str:
    """The xxh3-128 of foldwise's own source files: part of every kept statistic's key, so
    a value computed by other code (another version, a local edit) is computed again."""
    global _source_digest
    if _source_digest is None:
        package = Path(__file__).resolve().parents[1]
        hasher = xxhash.xxh3_128()
        for path in sorted(package.rglob("*.py")):
            hasher.update(str(path.relative_to(package)).encode())
            hasher.update(path.read_bytes())
        _source_digest = hasher.hexdigest()
    return _source_digest


class StatisticsFile:
    """A :class:`~foldwise.aggregate._stored.StatisticsStore` in the foldwise directory:
    ``<root>/statistics/<digest of the storage and study name>.json``.

    The file holds the values computed for one study, under a key made of the study's
    content digest (:meth:`~foldwise.records.StudyRecord.digest`: every trial, record and
    setting, whichever storage it was read from) and :func:`source_digest`. A key that
    differs (the study gained trials, foldwise changed) drops what the file held. Values
    are JSON (floats written by ``repr`` read back bit for bit); a file that cannot be read
    or written is ignored with a log line: a value is then computed as if never kept.
    Concurrent writers may drop each other's values (the last write wins); either way a
    value read back is one computed for this key.

    Parameters
    ----------
    root
        The foldwise directory (the cache's ``root``).
    record
        The study.
    writable
        False: only read what is kept (a read-only cache).
    """

    def __init__(self, root: str | os.PathLike[str], record: StudyRecord, *,
                 writable: bool = True) -> None:
        self.path = (Path(root) / STATISTICS_DIR
                     / f"{hash_text(f'{record.location} :: {record.name}')[:32]}.json")
        self._record = record
        self._writable = writable
        self._key: dict[str, Any] | None = None
        self._entries: dict[str, Any] | None = None

    @property
    def key(self) -> dict[str, Any]:
        if self._key is None:
            self._key = {"format": _FORMAT, "study": self._record.digest(),
                         "code": source_digest()}
        return self._key

    @staticmethod
    def _entry(name: str, args: Mapping[str, Any]) -> str:
        return f"{name} {json.dumps(dict(args), sort_keys=True, allow_nan=True)}"

    def _read(self) -> dict[str, Any]:
        try:
            stored = json.loads(self.path.read_bytes())
            if stored.get("key") == self.key and isinstance(stored.get("entries"), dict):
                return stored["entries"]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            logger.info("kept statistics %s not used (%s); they are computed", self.path, exc)
        return {}

    def get(self, name: str, args: Mapping[str, Any]) -> Any | None:
        if self._entries is None:
            self._entries = self._read()
        return self._entries.get(self._entry(name, args))

    def put(self, name: str, args: Mapping[str, Any], value: Any) -> None:
        entries = self._read()  # what other readers kept since
        entries[self._entry(name, args)] = value
        self._entries = entries
        if not self._writable:
            return
        try:
            text = json.dumps({"key": self.key, "entries": entries}, allow_nan=True)
            with atomic_path(self.path, durable=False) as temporary:
                temporary.write_text(text, encoding="utf-8")
        except (OSError, TypeError, ValueError) as exc:
            logger.info("statistics not kept in %s (%s); the next reader computes them",
                        self.path, exc)
