"""A throw-away PostgreSQL server for the cluster tests.

:func:`start_server` runs ``initdb`` in a new temporary directory and ``pg_ctl start`` on a
free loopback port (TCP on 127.0.0.1 only, no Unix socket), with durability switched off
(a test server: nothing in it must survive the session); :meth:`PostgresServer.stop` stops
it and removes the directory. PostgreSQL refuses to run as root, so as root the server runs
as ``nobody`` (through ``runuser``), its directory owned by that user.

The binaries are found on ``PATH`` or in Debian's ``/usr/lib/postgresql/<version>/bin``
(``apt-get install postgresql`` puts them there; ``.ci/run`` does it). When the server
cannot start, :func:`start_server` raises :class:`ServerUnavailable` with the reason, which
the session fixture turns into a skip that names it (or a failure where
``FOLDWISE_REQUIRE_POSTGRES=1``, as ``.ci/run`` sets).
"""

from __future__ import annotations

import contextlib
import gc
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ._servers import unavailable

#: Set to 1 to fail, not skip, the tests that need a server when none can start (CI).
REQUIRE_ENV = "FOLDWISE_REQUIRE_POSTGRES"
USER = "foldwise"


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def _traversable_temp() -> str:
    """A temporary directory every user can traverse (the server's user must reach its own
    directory inside it): $TMPDIR when it is, else /tmp."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        path = Path(base).resolve()
        if all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents)):
            return str(path)
    return "/tmp"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server: ``url(database)`` connects to it as its superuser."""

    directory: Path
    bin_dir: Path
    port: int
    run_as: str | None
    created: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg",
            options: str = "") -> str:
        return f"{driver}://{USER}@127.0.0.1:{self.port}/{database}{options}"

    def libpq_url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, *, durable: bool = False) -> str:
        """Create database ``name`` (a fresh one per test module or test) and return its URL.

        The server runs with ``synchronous_commit=off`` for speed: a commit it acknowledged
        can still be lost when it is stopped in ``"immediate"`` mode (its WAL not yet
        written). A test that stops the server that way and counts on what was committed
        asks for ``durable=True``: every session of that database then commits
        synchronously, as a production server does.
        """
        import psycopg

        with psycopg.connect(self.libpq_url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
            if durable:
                connection.execute(f'ALTER DATABASE "{name}" SET synchronous_commit TO on')
        self.created.append(name)
        return self.url(name)

    def sql(self, database: str, statement: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.libpq_url(database), autocommit=True) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def _command(self, *args: str) -> list[str]:
        return (["runuser", "-u", self.run_as, "--"] if self.run_as else []) + list(args)

    def _pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._command(str(self.bin_dir / "pg_ctl"), "-D",
                                            str(self.data_dir), *args),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=300 -c shared_buffers=32MB")
        done = self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.directory / "server.log"),
                            "-o", options, timeout=90)
        if done.returncode != 0:
            raise ServerUnavailable(f"pg_ctl start failed ({done.returncode}): "
                                    f"{done.stderr.strip() or done.stdout.strip()} "
                                    f"{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-w", "-m", mode)

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.directory / "server.log").read_text(
                errors="replace").splitlines()[-lines:])
        return ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_server() -> PostgresServer:
    """Start a fresh server (see the module docstring) or raise :class:`ServerUnavailable`."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise ServerUnavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in "
            "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql, "
            "as .ci/run does)")
    run_as = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            raise ServerUnavailable("running as root and there is no user 'nobody' to run "
                                    "PostgreSQL as") from None
        if shutil.which("runuser") is None:
            raise ServerUnavailable("running as root without runuser to start PostgreSQL as "
                                    "another user")
        run_as = "nobody"
    directory = Path(tempfile.mkdtemp(prefix="foldwise-pg-",
                                      dir=_traversable_temp() if run_as else None))
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(directory, bin_dir, _free_port(), run_as)
    try:
        init = subprocess.run(
            server._command(str(bin_dir / "initdb"), "-D", str(server.data_dir), "-U", USER,
                            "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"),
            capture_output=True, text=True, timeout=120, check=False)
        if init.returncode != 0:
            raise ServerUnavailable(f"initdb failed ({init.returncode}): "
                                    f"{(init.stderr or init.stdout).strip()[-1500:]}")
        for attempt in range(3):  # the free port may be taken between probe and start
            try:
                server.start()
                break
            except ServerUnavailable:
                if attempt == 2:
                    raise
                server.port = _free_port()
                time.sleep(0.2)
        return server
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session (skipped, with the reason, where
    none can start; failed instead where ``FOLDWISE_REQUIRE_POSTGRES=1``)."""
    try:
        server = start_server()
    except ServerUnavailable as exc:
        unavailable(REQUIRE_ENV, f"no PostgreSQL server can start here: {exc}")
    try:
        yield server
    finally:
        gc.collect()  # caches of finished tests write their last-used times while it runs
        server.remove()
