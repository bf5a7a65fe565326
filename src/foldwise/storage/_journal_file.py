"""A crash-safe journal file for Optuna's ``JournalStorage``: foldwise's default study storage.

Optuna's journal storage keeps a study as an append-only log of operations, replayed in
memory; its backend interface has two methods (``read_logs``, ``append_logs``). This
backend implements them for one file on a local disk, tuned for a process that may be
killed at any instant:

* **Lock released by the kernel.** Appends hold ``fcntl.flock`` on the journal itself.
  When a process dies the kernel drops its lock at once, so a resumed run never waits for
  a stale lock file to expire (Optuna's own file backend uses lock files with a 30 s grace
  period).
* **One write per append.** A batch of log lines is encoded first and written with a
  single ``os.write`` on an ``O_APPEND`` descriptor, so a kill between system calls
  cannot leave half a batch.
* **Torn tails repaired.** Should a line still be cut short (a kill inside the write, a
  full disk), readers skip the unterminated tail, and the next writer truncates it under
  the lock before appending, so the journal never holds a corrupt line in the middle.
* **Incremental reads.** Byte offsets of line numbers are remembered, so each sync reads
  only what other processes appended since the last one.
* **Damage is told, not guessed.** Every line carries a CRC-32 of its own JSON under the
  extra key ``"fw_crc"``, written last (Optuna's replay ignores keys it does not know, so
  Optuna's own ``JournalStorage`` and its tools still read the file). The line without
  that last key is, byte for byte, the JSON the checksum covers, so a reader checks the
  line's own bytes and never encodes the log again. A line that is not JSON, or whose
  checksum does not match (a changed digit), stops the reader with
  :class:`~foldwise.errors.JournalCorruptedError` naming the file, the line number and the
  byte offset, and the fix: :func:`foldwise.storage.repair_journal` (``foldwise repair``,
  :mod:`foldwise.storage._journal_repair`). Lines written without a checksum (by Optuna, or
  foldwise 0.1) are read as they are. Only ``\\n`` ends a line.

Durability: with ``durable=False`` (the default) appends are not fsynced; everything
written survives the death of the process (it is in the OS page cache), and an operating
system crash loses at most the last operations, never the journal's consistency. Pass
``durable=True`` to fsync every append (about a millisecond each on ordinary disks).

Reading only: with ``read_only=True`` the file must exist (nothing is created) and is
opened for reading only, without a lock, so a journal on a read-only file system or owned
by another user can be read; an append raises :class:`~foldwise.errors.StorageError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend

from foldwise.errors import JournalCorruptedError, StorageError

try:  # POSIX; elsewhere the backend refuses to open (an OSError, see _spec.py)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["CHECKSUM_KEY", "FileJournalBackend", "decode_line", "encode_line", "split_lines"]

logger = logging.getLogger(__name__)

#: The key of each journal line holding the CRC-32 of the line's other content.
CHECKSUM_KEY = "fw_crc"


#: ``json.dumps(log, separators=(",", ":"))`` without building an encoder per call.
_compact = json.JSONEncoder(separators=(",", ":")).encode


def encode_line(log: dict[str, Any]) -> str:
    """One journal line: the log's JSON with the CRC-32 of that JSON added as its last key.

    The same text as ``json.dumps({**log, "fw_crc": crc})``, made from one encoding of
    the log: its JSON without the closing brace, then the checksum's key and value.
    """
    text = _compact(log)
    crc = f"{zlib.crc32(text.encode()):08x}"
    if text == "{}":  # pragma: no cover - every Optuna log has an op_code
        return f'{{"{CHECKSUM_KEY}":"{crc}"}}\n'
    return f'{text[:-1]},"{CHECKSUM_KEY}":"{crc}"}}\n'


# The end of a line written by ``encode_line``: the checksum's key and value (8 hex
# digits), then the closing brace and the newline.
_TAIL_START = b',"' + CHECKSUM_KEY.encode() + b'":"'
_TAIL_LENGTH = len(_TAIL_START) + 8 + 3  # ,"fw_crc":"01234567"}\n


def decode_line(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The log of one line (its checksum key removed), or None and why it is damaged.

    A line that ends with its checksum, as :func:`encode_line` writes every line, is
    checked on its own bytes: the CRC-32 of the line up to that key, closed by ``}``, is
    the CRC-32 of the log's JSON as it was written, and no JSON is encoded. Any other line
    with a checksum, and one whose bytes do not match, is checked on its log encoded
    again (as readers before did), so a line is accepted exactly when it was before.
    Lines without a checksum (Optuna's own, foldwise 0.1) are read as they are.
    """
    try:
        log = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"it is not UTF-8 text ({exc.reason} at column {exc.start + 1})"
    except ValueError as exc:
        return None, f"it is not valid JSON ({exc})"
    if not isinstance(log, dict):
        return None, "it is not a JSON object"
    stored = log.pop(CHECKSUM_KEY, None)
    if stored is None:
        return log, ""
    cut = len(line) - _TAIL_LENGTH
    if (line.startswith(_TAIL_START, cut) and line.endswith(b'"}\n')
            and line[cut + len(_TAIL_START):-3] == stored.encode()
            and stored == f"{zlib.crc32(b'}', zlib.crc32(memoryview(line)[:cut])):08x}"):
        return log, ""
    if f"{zlib.crc32(_compact(log).encode()):08x}" != stored:
        return None, "its checksum does not match its content (a changed byte)"
    return log, ""


def split_lines(data: bytes) -> Iterator[bytes]:
    """The lines of ``data``, each with its ``\\n``; the last one without it if cut short.

    Only ``\\n`` ends a line (JSON escapes every other control character), so a damaged
    byte that became a ``\\r`` makes one damaged line instead of ending the journal early.
    """
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            yield data[start:]
            return
        yield data[start:end + 1]
        start = end + 1


def _reopen(cls: type[FileJournalBackend], path: str, durable: bool,
            read_only: bool) -> FileJournalBackend:
    return cls(path, durable=durable, read_only=read_only)


class FileJournalBackend(BaseJournalBackend):
    """Journal backend on one local file (see the module docstring).

    Parameters
    ----------
    path
        The journal file; created (with its directory) if missing, unless ``read_only``.
    durable
        fsync after every append.
    read_only
        Only read: the file must exist (else ``FileNotFoundError``), nothing is created,
        and it is opened without write access.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False,
                 read_only: bool = False) -> None:
        if fcntl is None:  # pragma: no cover
            raise OSError("FileJournalBackend needs fcntl (POSIX).")
        self.path = Path(path)
        self.read_only = read_only
        if read_only:
            if not self.path.is_file():
                raise FileNotFoundError(errno.ENOENT, "the study journal does not exist",
                                        str(self.path))
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(exist_ok=True)
        self.durable = durable
        # (line number, byte offset) of the end of what this process has read so far.
        self._read_upto = (0, 0)
        self._lock = threading.Lock()  # guards _read_upto and _fd between threads
        self._fd: int | None = None
        self._pid = -1

    @property
    def bytes_read(self) -> int:
        """Bytes of the journal this process has read and applied so far (whole lines)."""
        with self._lock:
            return self._read_upto[1]

    def _descriptor(self) -> int:
        """This process's descriptor of the journal (reopened after a fork)."""
        if self._fd is None or self._pid != os.getpid():
            flags = os.O_RDONLY if self.read_only else os.O_RDWR | os.O_APPEND
            self._fd = os.open(self.path, flags)
            self._pid = os.getpid()
        return self._fd

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(fd)

    def __reduce__(self) -> tuple[Any, ...]:
        # Worker processes get a fresh backend on the same file (offsets are per process).
        return (_reopen, (type(self), str(self.path), self.durable, self.read_only))

    @contextlib.contextmanager
    def _locked(self, fd: int) -> Iterator[None]:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self.read_only:
            raise StorageError(
                f"the study journal {self.path} was opened for reading only; open it "
                "without read_only to write (foldwise.optimize does).")
        payload = "".join(encode_line(log) for log in logs)
        data = payload.encode("utf-8")
        # One descriptor per process; threads take turns (flock does not order threads
        # sharing a descriptor).
        with self._lock:
            fd = self._descriptor()
            with self._locked(fd):
                self._repair_tail(fd)
                written = os.write(fd, data)
                while written < len(data):  # a short write (rare): finish it under the lock
                    written += os.write(fd, data[written:])
                if self.durable:
                    os.fsync(fd)

    def append_logs_read(self, logs: list[dict[str, Any]], log_number_read: int
                         ) -> list[dict[str, Any]] | None:
        """Append ``logs`` as :meth:`append_logs` does; and when this process had read the
        journal to its end, ``log_number_read`` logs, just before (no other process
        appended since), count them read and return them as :meth:`read_logs` would:
        the caller applies them without reading its own lines back. None otherwise (read
        them with :meth:`read_logs`)."""
        if self.read_only:
            self.append_logs(logs)  # raises
        lines = [encode_line(log) for log in logs]
        data = "".join(lines).encode("utf-8")
        with self._lock:
            fd = self._descriptor()
            with self._locked(fd):
                known, offset = self._read_upto
                # Read to its end (whole lines): the file cannot end in a torn line.
                at_end = known == log_number_read and os.fstat(fd).st_size == offset
                if not at_end:
                    self._repair_tail(fd)
                written = os.write(fd, data)
                while written < len(data):
                    written += os.write(fd, data[written:])
                if self.durable:
                    os.fsync(fd)
                if not at_end:
                    return None
                self._read_upto = (known + len(lines), offset + len(data))
        decoded = json.loads(f"[{','.join(line[:-1] for line in lines)}]")
        for log in decoded:
            del log[CHECKSUM_KEY]
        return decoded

    def _repair_tail(self, fd: int) -> None:
        """Truncate an unterminated last line left by a writer that died mid-write."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        block = 1 << 16
        end = size
        while end > 0:
            start = max(0, end - block)
            chunk = os.pread(fd, end - start, start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        logger.warning("journal %s: removed a torn last line (%d bytes) left by an interrupted "
                       "write", self.path, size - keep)
        os.ftruncate(fd, keep)

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        with self._lock:
            known, offset = self._read_upto
            fd = self._descriptor()
        if known > log_number_from:
            known, offset = 0, 0
        size = os.fstat(fd).st_size
        if size <= offset:
            return  # nothing new: the common case of a sync in a single process
        data = os.pread(fd, size - offset, offset)
        number, position = known, offset
        logs = []
        for line in split_lines(data):
            if not line.endswith(b"\n"):
                break  # a torn or still-being-written tail: not a log yet
            if number >= log_number_from:
                log, why = decode_line(line)
                if log is None:
                    raise JournalCorruptedError(
                        f"the study journal {self.path} is damaged at line {number + 1} (byte "
                        f"offset {position}): {why}. Every line before it is intact. Repair "
                        f"it with `foldwise repair STUDY --storage journal:{self.path}` (or "
                        f"foldwise.repair_journal('journal:{self.path}')): it keeps every "
                        "intact line, backs up the damaged file and names the trials that were "
                        "lost; then run the same optimize call again to re-run them.")
                logs.append(log)
            position += len(line)
            number += 1
        with self._lock:
            if number > self._read_upto[0]:
                self._read_upto = (number, position)
        yield from logs
