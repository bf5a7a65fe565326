"""Optuna's RDB storage as foldwise opens it: a database server shared by a cluster.

``storage="postgresql+psycopg://user@host/db"`` (or any SQLAlchemy URL Optuna accepts, such
as ``sqlite:///studies.db``) opens Optuna's :class:`~optuna.storages.RDBStorage`. Every
worker of a cluster opens the same URL, so studies, trials and the budget they count are
shared by all hosts.

* **Drivers.** ``postgresql+psycopg://`` names psycopg 3 (``pip install
  "foldwise[cluster]"``). A bare ``postgresql://`` means psycopg2 to SQLAlchemy; where only
  psycopg 3 is installed it is used instead, so both spellings work.
* **Dead workers.** A trial records a heartbeat every :data:`HEARTBEAT_INTERVAL` seconds
  while it runs. A RUNNING trial whose heartbeat is older than :data:`GRACE_PERIOD` — its
  worker was killed, its host died or lost the network — is failed by the next worker that
  reads the study (:func:`fail_stale_trials`) with a foldwise failure record
  (``FailureKind.WORKER_DIED``), so its place in the budget is run again and the fold
  table counts it as re-run. foldwise fails such trials itself rather than through
  Optuna's stale-trial callback: the callback is called after the trial is failed, when
  Optuna refuses any further attribute on it, so it could not record why. On one host a
  dead worker is found at once from its process id (:mod:`foldwise.storage._liveness`);
  across hosts the heartbeat is what tells.
* **Connections.** On PostgreSQL, TCP keepalives make a connection to a host that vanished
  fail within about a minute instead of hanging (options already in the URL win). Pooled
  connections are not pinged before each use (``pool_pre_ping`` measured one extra round
  trip per four queries of a trial): a database server restarted during a run fails the
  next query, which stops the run as a fault of the machine (no trial counted), and the
  same call resumes; SQLAlchemy replaces the dropped connections.
* **Opening.** Optuna creates its tables the first time a database is opened; processes
  opening a new PostgreSQL database at the same moment would collide, so they take turns
  on an advisory lock while they open it.
* **Reading** (``read_only=True``, what ``load_result`` and the command line's ``show``,
  ``report`` and ``studies`` use) creates no table and records no heartbeat; a database
  without Optuna's tables is a :class:`~foldwise.errors.StorageNotFoundError`.
* **Passwords** never reach a message, a log line or a report: :func:`public_url` hides
  them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.storages import RDBStorage

from foldwise.errors import StorageNotFoundError
from foldwise.records import Failure, FailureKind, failure_attrs
from foldwise.storage._liveness import WORKER_ATTR
from foldwise.storage._optuna import fail_trial, heartbeat_interval

__all__ = ["GRACE_PERIOD", "HEARTBEAT_INTERVAL", "fail_stale_trials", "open_rdb", "public_url"]

logger = logging.getLogger(__name__)

#: Seconds between heartbeats of a running trial on RDB storages.
HEARTBEAT_INTERVAL = 10
#: Seconds without a heartbeat after which a RUNNING trial is failed and its budget re-run.
GRACE_PERIOD = 2 * HEARTBEAT_INTERVAL

# The advisory lock processes opening one PostgreSQL storage take turns on: "optuna" in
# ASCII (apart from the cache index's locks, which hash a table name and a digest).
_OPENING_LOCK = 0x6F7074756E61

# libpq's TCP keepalives (seconds): a connection to a host that disappeared fails after
# about idle + interval * count instead of waiting for the kernel's two hours.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
               "keepalives_count": 3}

_RDB_PARAMETERS = frozenset(inspect.signature(RDBStorage.__init__).parameters)


def public_url(url: str) -> str:
    """``url`` with its password hidden (``***``), for messages; unparsable text as given
    without anything after an ``@`` that could hold credentials."""
    from sqlalchemy.engine import make_url  # Optuna's RDB storage depends on SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}" if "@" in rest else url


def driver_url(url: str) -> str:
    """The URL SQLAlchemy is given: ``postgresql://`` with psycopg 3 where psycopg2 is
    missing (SQLAlchemy's default PostgreSQL driver is psycopg2)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain) and importlib.util.find_spec("psycopg2") is None \
                and importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def _engine_kwargs(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in (
            "psycopg", "psycopg2", "psycopg2cffi"):
        missing = {k: v for k, v in _KEEPALIVES.items() if k not in parsed.query}
        if missing:
            kwargs["connect_args"] = missing
    return kwargs


@contextlib.contextmanager
def _opening(url: str, engine_kwargs: dict[str, Any], *, read_only: bool) -> Iterator[None]:
    """Open Optuna's storage at ``url`` in the block: on PostgreSQL, one process at a time.

    Optuna creates its tables (and stamps their version) when a storage is first opened,
    in several statements: processes opening a new database at the same moment collide
    (``relation "alembic_version" already exists``), and a reader can find it half made.
    So on PostgreSQL the opening holds an advisory lock on a connection of its own. A
    reader refuses a database without Optuna's tables (reading creates nothing).
    """
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.connect() as connection:
            locked = engine.dialect.name == "postgresql"
            if locked:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"),
                                   {"key": _OPENING_LOCK})
            try:
                if read_only and not sqlalchemy.inspect(connection).has_table("studies"):
                    raise StorageNotFoundError(
                        f"no study storage at {public_url(url)}: the database holds no "
                        "Optuna tables (foldwise.optimize creates them on its first run "
                        "there). Check the URL (--storage on the command line, storage= in "
                        "Python).")
                yield
            finally:
                if locked:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"),
                                       {"key": _OPENING_LOCK})
    finally:
        engine.dispose()


def open_rdb(url: str, *, read_only: bool = False) -> RDBStorage:
    """Optuna's RDB storage at ``url`` (see the module docstring).

    Parameters
    ----------
    url
        A SQLAlchemy URL (``postgresql+psycopg://user:password@host:5432/db``).
    read_only
        Open for reading: no heartbeats, and no table is created.

    Raises
    ------
    StorageNotFoundError
        ``read_only`` and the database holds no Optuna storage.
    ImportError
        The URL's database driver is not installed.
    sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError
        The server cannot be reached or refuses the connection (the caller,
        :func:`foldwise.storage.open_storage`, turns them into a ``StorageError``).
    """
    url = driver_url(url)
    options: dict[str, Any] = {"engine_kwargs": _engine_kwargs(url)}
    if read_only and "skip_table_creation" in _RDB_PARAMETERS:
        options["skip_table_creation"] = True
    with _opening(url, options["engine_kwargs"], read_only=read_only):
        storage = RDBStorage(url, **options)
    if not read_only:
        # Heartbeats set on the object rather than passed: as an argument Optuna warns that
        # they are experimental, and silencing that with catch_warnings would race with
        # other threads' warning filters.
        storage.heartbeat_interval = HEARTBEAT_INTERVAL
        storage.grace_period = GRACE_PERIOD
    return storage


def fail_stale_trials(study: optuna.Study) -> int:
    """Fail the RUNNING trials of ``study`` whose heartbeat stopped, as a dead worker's.

    Each is marked FAIL with a :class:`~foldwise.records.Failure` of kind
    ``WORKER_DIED`` (it does not use the budget; its place is run again). A no-op on
    storages without heartbeats.

    Parameters
    ----------
    study
        The study whose stale trials are failed.

    Returns
    -------
    int
        How many trials this call failed (another worker may fail some first).
    """
    storage = study._storage
    if not heartbeat_interval(storage):
        return 0
    failed = 0
    for stale_id in storage._get_stale_trial_ids(study._study_id):  # type: ignore[attr-defined]
        trial = storage.get_trial(stale_id)
        worker = trial.user_attrs.get(WORKER_ATTR) or {}
        died = Failure(FailureKind.WORKER_DIED, "WorkerDied",
                       f"worker {worker} stopped sending heartbeats while running it (it "
                       "was killed, or its host died or lost the network)")
        if fail_trial(study, trial, failure_attrs(died, trial.params)):
            failed += 1
            logger.info("%s: trial %d stopped sending heartbeats (worker %s on %s); it is "
                        "marked failed and its budget is run again", study.study_name,
                        trial.number, worker.get("pid"), worker.get("host"))
    return failed
