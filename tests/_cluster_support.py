"""A real dask.distributed cluster on loopback for the cluster tests and the benchmark.

:func:`local_cluster` starts a :class:`distributed.LocalCluster` of worker *processes* (one
thread each, as a cluster of single-core workers) listening on 127.0.0.1 only, with no
dashboard, and a :class:`distributed.Client` connected to it; both are closed at the end.
:func:`worker_pids` maps each worker's address to its process id, :func:`set_worker_env`
sets environment variables in the running workers (a worker the nanny restarts takes the
caller's environment again).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from distributed import Client, LocalCluster


@contextlib.contextmanager
def local_cluster(n_workers: int = 2) -> Iterator[Client]:
    """A LocalCluster of ``n_workers`` single-threaded worker processes and its client."""
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None,
                           silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            client.wait_for_workers(n_workers, timeout=120)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def worker_pids(client: Client) -> dict[str, int]:
    """Address -> process id of every worker."""
    return dict(client.run(os.getpid))


def _set_env(variables: Mapping[str, str | None]) -> None:
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def set_worker_env(client: Client, variables: Mapping[str, str | None],
                   workers: list[str] | None = None) -> None:
    """Set (a None value: remove) environment variables in the workers (all, or ``workers``)."""
    kwargs: dict[str, Any] = {} if workers is None else {"workers": workers}
    client.run(_set_env, dict(variables), **kwargs)
