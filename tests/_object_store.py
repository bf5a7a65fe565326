"""A throw-away S3 server for the object-store tests: moto's server on loopback.

:func:`start_s3` runs ``python -m moto.server`` on a free port of 127.0.0.1 (in-memory, no
credentials checked) and creates a bucket; :class:`S3Server` gives the ``s3://`` URL that
pyarrow's :class:`pyarrow.fs.S3FileSystem` opens (``endpoint_override``, ``scheme=http``)
and stops the server. The AWS SDK inside pyarrow still wants credentials: the fixture sets
dummy ones in the environment (inherited by worker processes started afterwards).

When the server cannot start (moto not installed), the fixture skips with the reason, or
fails where ``FOLDWISE_REQUIRE_S3=1`` (``.ci/run`` sets it: its ``.[dev]`` install brings
moto).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ._servers import unavailable

#: Set to 1 to fail, not skip, the tests that need the S3 server when it cannot start (CI).
REQUIRE_ENV = "FOLDWISE_REQUIRE_S3"
BUCKET = "foldwise"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "foldwise-test", "AWS_SECRET_ACCESS_KEY": "foldwise-test",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class S3Server:
    """A running moto S3 server on loopback."""

    port: int
    process: subprocess.Popen[bytes]

    def url(self, prefix: str) -> str:
        """An ``s3://`` URL of ``prefix`` in the test bucket, as a user would write it."""
        return (f"s3://{BUCKET}/{prefix}?endpoint_override=127.0.0.1:{self.port}"
                "&scheme=http&region=us-east-1")

    def filesystem(self):  # -> pyarrow.fs.S3FileSystem
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{self.port}", scheme="http",
                                 region="us-east-1", access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                 secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                 allow_bucket_creation=True)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_s3() -> S3Server:
    """Start moto's S3 server on a free loopback port and create the test bucket."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"moto[server] is not installed ({exc}); "
                           "pip install -e '.[dev]' brings it") from None
    port = _free_port()
    # its log (a line per request) goes to a file: a pipe nobody reads would fill and stop
    # the server mid-session
    log = tempfile.TemporaryFile()  # noqa: SIM115 (open while the server runs)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=log)
    server = S3Server(port, process)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError("moto's S3 server exited: " + log.read().decode()[-500:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("moto's S3 server did not listen within 60 s") from None
            time.sleep(0.1)
    server.filesystem().create_dir(BUCKET)
    return server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server for the session, with dummy credentials in the environment."""
    with pytest.MonkeyPatch.context() as environment:
        for name, value in CREDENTIALS.items():
            environment.setenv(name, value)
        # joblib's reusable worker processes started earlier in the session would not see
        # the credentials (the AWS SDK then waits on the EC2 metadata service): start them
        # afresh
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
        try:
            server = start_s3()
        except RuntimeError as exc:
            unavailable(REQUIRE_ENV, f"the S3 server cannot start: {exc}")
        try:
            yield server
        finally:
            server.stop()
