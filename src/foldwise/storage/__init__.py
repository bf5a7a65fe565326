"""Optuna storage glue: opening storages, foldwise's journal file, and Optuna internals.

What lives here:

* :func:`parse_storage` / :func:`open_storage` / :class:`StorageSpec` — what a user passes
  as ``storage=`` (``None`` for the default journal file, an Optuna URL, a journal path,
  ``"memory"``, a storage object), and how worker processes open it again.
* Optuna's RDB storage on a database server (``postgresql+psycopg://...``), shared by the
  workers of a cluster: heartbeats every :data:`HEARTBEAT_INTERVAL` seconds, and
  :func:`fail_stale_trials` failing the trials of workers silent for :data:`GRACE_PERIOD`
  seconds as a dead worker's (``foldwise.storage._rdb``).
* :class:`FileJournalBackend` — a crash-safe journal file (kernel lock, one write per
  append, torn tails repaired) for Optuna's ``JournalStorage``.
* :class:`BatchedJournalStorage` — Optuna's ``JournalStorage`` writing each trial of this
  process in few appends.
* :func:`repair_journal` / :class:`JournalRepairReport` — mend a journal with damaged lines:
  keep every intact line, mark the trials it lost to run again, keep the damaged file.
* :data:`WORKER_ATTR`, :func:`current_worker`, :func:`is_dead`, :func:`is_this_process` — which process runs a
  trial, and whether it is gone.
* :func:`trial_id`, :func:`storage_of`, :func:`flush_trial`, :func:`fail_trial`,
  :func:`focus_replay`,
  :func:`heartbeat_interval`, :func:`record_heartbeat`, :func:`fail_stale_trials` — every
  Optuna internal the rest of foldwise needs, behind typed functions.

Every access to Optuna's private names (``Study._storage``, ``Trial._trial_id``, the
journal replay, the heartbeat base class) is in this package and nowhere else, so an
Optuna release that moves them breaks one place, which ``tests/test_storage_contract.py``
(Optuna's own ``StorageTestCase`` run against these storages) and
``tests/test_journal*.py`` check. Tested with Optuna 4.7, 4.9 and 5.0 (the range pinned in
``pyproject.toml``).
"""

from __future__ import annotations

from foldwise.storage._batched import BatchedJournalStorage
from foldwise.storage._journal_file import FileJournalBackend
from foldwise.storage._journal_repair import repair_journal
from foldwise.storage._journal_report import (
    DamagedLine,
    JournalRepairReport,
    LostStudy,
    LostTrial,
)
from foldwise.storage._liveness import WORKER_ATTR, current_worker, is_dead, is_this_process
from foldwise.storage._optuna import (
    fail_trial,
    flush_trial,
    focus_replay,
    heartbeat_interval,
    record_heartbeat,
    reseed_sampler,
    storage_of,
    tell,
    trial_id,
)
from foldwise.storage._rdb import GRACE_PERIOD, HEARTBEAT_INTERVAL, fail_stale_trials
from foldwise.storage._spec import StorageSpec, open_storage, parse_storage

__all__ = [
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "WORKER_ATTR",
    "BatchedJournalStorage",
    "DamagedLine",
    "FileJournalBackend",
    "JournalRepairReport",
    "LostStudy",
    "LostTrial",
    "StorageSpec",
    "current_worker",
    "fail_stale_trials",
    "fail_trial",
    "flush_trial",
    "focus_replay",
    "heartbeat_interval",
    "is_dead",
    "is_this_process",
    "open_storage",
    "parse_storage",
    "record_heartbeat",
    "repair_journal",
    "reseed_sampler",
    "storage_of",
    "tell",
    "trial_id",
]
