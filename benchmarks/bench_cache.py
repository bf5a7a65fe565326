"""The cost of a metrics-only cache hit next to one Optuna trial, measured in the same run.

    python benchmarks/bench_cache.py

The optimizer asks the cache for a fold's metrics once per trial and fold, so a hit must
cost far less than the trial Optuna itself runs around it. The baseline is a trial with a
no-op objective on Optuna's in-memory storage: Optuna's own overhead per trial, the
smallest a trial can be. Every figure is the median of several repeats, in microseconds
per call. Target: a metrics-only hit costs less than 10 % of that trial.

Rows:

* ``get(key)``: the hit itself, key already built (after the first read of a key in a
  process, a dict lookup).
* ``key(...) + get(key)``: building the key from strategy, parameters, data and settings
  (memoized per process) and looking it up.
* ``metrics(...)``: the one call the optimizer makes per trial and fold; once with the
  default settings, once with one ``BacktestSettings`` object passed on every call, as the
  optimizer does.
* first lookups in a new process: the key built from scratch and one SQLite query, as after
  a restart (no process memo yet).
* a full result read from its Parquet file, next to running the backtest it stores.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
import timeit

import optuna

from foldwise import BacktestCache, BacktestSettings, datasets, examples
from foldwise.cache import _keys

REPEATS = 7
TRIALS = 500


def median_us(function, number: int) -> float:
    times = timeit.repeat(function, number=number, repeat=REPEATS)
    return statistics.median(times) / number * 1e6


def optuna_trial_us() -> float:
    """Median per-trial time of ``study.optimize`` with an objective that does nothing."""
    optuna.logging.set_verbosity(logging.WARNING)
    per_trial = []
    for _ in range(REPEATS):
        study = optuna.create_study()  # in-memory storage, default sampler
        start = time.perf_counter()
        study.optimize(lambda trial: 0.0, n_trials=TRIALS)
        per_trial.append((time.perf_counter() - start) / TRIALS)
    return statistics.median(per_trial) * 1e6


def main() -> None:
    data = datasets.load_sp500()
    strategy = examples.mean_reversion
    params = {"lookback": 60, "rebalance": 5}
    window = (1000, 3000)
    root = tempfile.mkdtemp(prefix="foldwise-bench-")
    cache = BacktestCache(root)

    run_us = median_us(lambda: strategy.run(data, params), number=3)
    cache.metrics(strategy, params, data, window=window)  # stores the full run and a slice
    key = cache.key(strategy, params, data, window=window)

    # Many stored slices, each looked up once by a cache object with an empty memo.
    n_slices = 300
    keys = [cache.key(strategy, {"lookback": 60, "rebalance": r}, data, window=window)
            for r in range(1, n_slices + 1)]
    for k in keys:
        cache.put(k, metrics={"sharpe": 1.0})
    cache.close()

    def first_lookups() -> float:
        fresh = BacktestCache(root)
        _keys._memo.clear()
        start = time.perf_counter()
        for r in range(1, n_slices + 1):
            fresh.get(fresh.key(strategy, {"lookback": 60, "rebalance": r}, data, window=window))
        elapsed = time.perf_counter() - start
        fresh.close()
        return elapsed / n_slices * 1e6

    first_us = statistics.median(first_lookups() for _ in range(REPEATS))

    def load_full() -> None:
        fresh = BacktestCache(root, results_in_memory=0)
        fresh.get(key.full()).result  # noqa: B018 - the load is what is measured

    load_us = median_us(load_full, number=3)

    trial_us = optuna_trial_us()
    get_us = median_us(lambda: cache.get(key), number=20_000)
    key_get_us = median_us(
        lambda: cache.get(cache.key(strategy, params, data, window=window)), number=20_000)
    metrics_us = median_us(
        lambda: cache.metrics(strategy, params, data, window=window), number=20_000)
    settings = BacktestSettings(costs=1)
    cache.metrics(strategy, params, data, window=window, settings=settings)
    settings_us = median_us(
        lambda: cache.metrics(strategy, params, data, window=window, settings=settings),
        number=20_000)

    n_dates, n_assets = data.shape
    print(f"foldwise cache benchmark: {strategy.name} on {n_dates} bars x {n_assets} assets, "
          f"median of {REPEATS} repeats")
    print(f"{'':58}{'us/call':>10}{'of a trial':>12}")

    def row(label: str, us: float, ratio: bool = True) -> None:
        share = f"{us / trial_us:>11.1%}" if ratio else ""
        print(f"{label:<58}{us:>10.2f}{share:>12}")

    row("one Optuna trial, no-op objective, in-memory storage", trial_us)
    row("metrics-only hit: cache.get(key)", get_us)
    row("metrics-only hit: cache.get(cache.key(...))", key_get_us)
    row("metrics-only hit: cache.metrics(..., window=...)", metrics_us)
    row("  the same with settings=BacktestSettings(...)", settings_us)
    row("first lookup in a new process: key + 1 SQLite query", first_us)
    row("full result read from Parquet (new process)", load_us, ratio=False)
    row("the backtest it stores, run", run_us, ratio=False)
    verdict = "met" if metrics_us < 0.1 * trial_us else "NOT met"
    print(f"\ntarget: a metrics-only hit < 10 % of a trial -> {verdict} "
          f"(get {get_us / trial_us:.1%}, key + get {key_get_us / trial_us:.1%}, "
          f"metrics() {metrics_us / trial_us:.1%})")
    print(f"a full result loads {run_us / load_us:.1f}x faster than it runs")


if __name__ == "__main__":
    main()
