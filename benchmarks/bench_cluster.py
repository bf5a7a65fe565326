"""Trials per second on a dask.distributed LocalCluster (2 worker processes) against n_jobs=1.

Run: python benchmarks/bench_cluster.py [--quick] [--trials N] [--repeat R] [--ms 20]

The strategy costs ~20 ms of CPU per backtest (``heavy_crossover`` of bench_optimize.py,
calibrated here; ``--ms`` sets another cost), 6 walk-forward folds x N random-sampler
trials, seed 0. Both sides keep
the studies in Optuna's RDB storage on a real PostgreSQL server and the cache index on the
same server (PostgresIndex), a fresh database per run:

* baseline: ``optimize(..., n_jobs=1)`` in this process;
* ours: ``optimize(..., n_jobs=2)`` under ``joblib.parallel_config(backend="dask")`` with a
  Client of a LocalCluster of 2 single-threaded worker processes on loopback (started, and
  foldwise imported in its workers, before timing, as in a working session).

A third line runs n_jobs=1 on the local journal file and SQLite index, to show what the
database round trips cost per trial. Medians of interleaved runs. The server, the
scheduler, both workers and this process share the machine's cores: on a 2-core machine
the cluster's speed-up is bounded by that, not by foldwise.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import joblib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests._postgres and tests._cluster_support

from tests._cluster_support import local_cluster  # noqa: E402
from tests._postgres import PostgresServer, start_server  # noqa: E402

import foldwise  # noqa: E402
from _timing import median_time  # noqa: E402
from bench_optimize import heavy_crossover, heavy_panel  # noqa: E402
from foldwise.cache import PostgresIndex  # noqa: E402

SPLITTER = foldwise.WalkForward(train=1000, test=250)  # 6 folds on the 2520-bar panel
_databases = itertools.count()


def _run(data, space, n_trials: int, *, n_jobs: int, server: PostgresServer | None,
         directory: str) -> float:
    """Trials per second of one optimization (fresh storage and cache)."""
    if server is None:
        storage, cache = f"journal:{directory}/studies.journal", foldwise.BacktestCache(directory)
    else:
        storage = server.create_database(f"bench_{next(_databases)}")
        cache = foldwise.BacktestCache(directory, backend=PostgresIndex(storage))
    start = time.perf_counter()
    with joblib.parallel_config(backend="dask" if n_jobs > 1 else "loky"):
        result = foldwise.optimize(heavy_crossover, data, space, SPLITTER, n_trials=n_trials,
                                   seed=0, sampler="random", n_jobs=n_jobs, study="heavy",
                                   storage=storage, cache=cache, show_progress=False,
                                   check_lookahead=False)
    seconds = time.perf_counter() - start
    cache.close()
    return int(result.folds["trials_complete"].sum()) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of each, 4 trials")
    parser.add_argument("--trials", type=int, default=12, help="trials per fold (12)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs (3)")
    parser.add_argument("--ms", type=float, default=20.0, help="CPU ms per backtest (20)")
    args = parser.parse_args()
    n_trials, repeat = (4, 1) if args.quick else (args.trials, args.repeat)
    data = heavy_panel()
    one_pass = median_time(lambda: heavy_crossover.run(data, {"passes": 1}))
    passes = max(1, round(args.ms / 1e3 / one_pass))
    space = {"fast": foldwise.Float(2.0, 40.0), "slow": foldwise.Float(41.0, 250.0),
             "passes": passes}
    per_backtest = median_time(lambda: heavy_crossover.run(data, {"passes": passes}))
    server = start_server()
    try:
        with local_cluster(2) as client:
            client.run(lambda: __import__("bench_optimize") and None)  # imported, warm
            rates: dict[str, list[float]] = {"local": [], "one": [], "cluster": []}
            for _ in range(repeat):  # interleaved: the machine's speed drifts between runs
                for name, n_jobs, on_server in (("one", 1, True), ("cluster", 2, True),
                                                ("local", 1, False)):
                    with tempfile.TemporaryDirectory() as directory:
                        rates[name].append(_run(data, space, n_trials, n_jobs=n_jobs,
                                                server=server if on_server else None,
                                                directory=directory))
    finally:
        gc.collect()  # the caches write their last-used times while the server runs
        server.remove()
    one, cluster, local = (statistics.median(rates[k]) for k in ("one", "cluster", "local"))
    print(f"one backtest: {per_backtest * 1e3:.1f} ms ({passes} passes); "
          f"{len(SPLITTER.folds(data))} folds x {n_trials} trials; trials/s, median of {repeat}:")
    print(f"  n_jobs=1, this process, PostgreSQL storage and index:   {one:6.2f}")
    print(f"  LocalCluster 2 workers (dask), n_jobs=2, same backends:  {cluster:6.2f}")
    print(f"  n_jobs=1, journal file and SQLite index (reference):     {local:6.2f}")
    print(f"cluster / n_jobs=1 = {cluster / one:.2f}x   (PostgreSQL / journal at n_jobs=1: "
          f"{one / local:.2f}x)")


if __name__ == "__main__":
    main()
