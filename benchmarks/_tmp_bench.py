"""The walk-forward optimizer next to bare Optuna loops, in the same run.

Run: python benchmarks/bench_optimize.py [--quick] [--cases 1,1b,2] [--repeat N]
     python benchmarks/bench_optimize.py --scale [--folds 20 --trials 1000]
     python benchmarks/bench_optimize.py --memory-split

The load average is printed before and after (the machine's load moves every figure).

Cases (1), (1b) and (2) time the optimization alone (``keep_statistics=False``: the bare
loops compute no report either); what keeping the report's statistics at the end of a long
call costs is printed by ``--scale`` and by ``bench_show.py --build``.

(1) A full walk-forward optimization — SMA crossover on GOOG, 5 folds x 200 TPE trials,
    seed 0, persisted (journal file) and resumable, every backtest through a fresh cache —
    next to the same per-fold Optuna studies on in-memory storage with the bare backtest as
    the objective (no cache, no persistence). Target: ours <= 1.0x the bare loop. A third
    line runs foldwise with an in-memory study and cache index, to show what persisting
    costs. Medians of interleaved runs (the machine's speed drifts between runs).
(1b) The same comparison for the 60-day mean reversion on the S&P 500 data, whose
    backtest costs more: there the shared full-history runs and the repeats pay.
(2) Trials per second with n_jobs=2 against n_jobs=1 for a strategy that costs ~20 ms of
    CPU per backtest (the worker pool is started before timing, as in a working session).
    Target: >= 1.85x. Beside it, the machine's own ceiling: the same backtests without
    foldwise in two worker processes against one (cores that share caches and memory
    bandwidth, or a machine shared with other work, give two processes less than 2x).
(3) ``--scale``: growth to 20,000 trials — SMA crossover on GOOG, 20 walk-forward folds x
    1000 TPE trials, one process. Prints the disk used by the foldwise directory (by part:
    journal, cache index, artifacts, data copies), the RSS growth per trial during the
    trial loop, and foldwise's own per-trial cost (a trial's wall time, from the end of the
    previous trial to its own end, minus the time Optuna's sampler spent suggesting it) by
    decile of trials within a fold. Targets: <= 100 MB, <= 1 KB per trial, flat within
    +-20 %. Not run by default (about 5 minutes on a quiet 2-core machine).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import optuna
import pandas as pd

import foldwise
from _timing import median_time
from foldwise import MarketData, backtest, optimize
from foldwise.cache import MemoryIndex
from foldwise.examples import mean_reversion, rolling_mean, sma_crossover
from foldwise.optimizer._samplers import study_seed
from foldwise.space import Int
from foldwise.splits import WalkForward

# The SMA-crossover space of the issue that measured Optuna's repeats: fast 5..50,
# slow 20..200, fast < slow (an infeasible pair costs a sample, never a backtest).
SPACE = {"fast": Int(5, 50), "slow": Int(20, 200)}
CONSTRAINT = "fast < slow"
SPLITTER = WalkForward(train=750, test=250)
COSTS = 2.0


def bare_loop(data: MarketData, n_trials: int) -> float:
    """The same studies, in memory, with the strategy + backtest + metric as the objective."""
    folds = SPLITTER.folds(data)
    start = time.perf_counter()
    for fold in folds:
        lo, hi = int(fold.train[0]), int(fold.train[-1]) + 1

        def objective(trial: optuna.Trial) -> float:
            fast = trial.suggest_int("fast", 5, 50)
            slow = trial.suggest_int("slow", 20, 200)
            if fast >= slow:
                raise optuna.TrialPruned()  # infeasible: sampled, not backtested
            result = backtest(sma_crossover(data, fast=fast, slow=slow), data, costs=COSTS)
            return result.islice(lo, hi).metrics()["sharpe"]  # noqa: B023

        def enough(study: optuna.Study, trial: object) -> None:
            done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if len(done) >= n_trials:
                study.stop()

        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=study_seed(0, fold.number, 0)))
        study.optimize(objective, callbacks=[enough])
    return time.perf_counter() - start


def ours(data: MarketData, n_trials: int, directory: Path, *, persisted: bool = True,
         **kwargs) -> tuple[float, object]:
    """foldwise.optimize; ``persisted=False``: in-memory study and cache index and no
    arrays written (``keep_arrays="never"``): nothing of the trial loop touches the disk,
    which shows what persisting the trials and the cache costs."""
    storage = f"journal:{directory}/studies.journal" if persisted else "memory"
    cache = foldwise.BacktestCache(directory) if persisted else foldwise.BacktestCache(
        directory, backend=MemoryIndex(), keep_arrays="never")
    start = time.perf_counter()
    result = optimize(sma_crossover, data, SPACE, SPLITTER, constraints=CONSTRAINT,
                      n_trials=n_trials, seed=0, costs=COSTS, study="bench", storage=storage,
                      cache=cache, show_progress=False, keep_statistics=False, **kwargs)
    seconds = time.perf_counter() - start
    bypassed = (directory / "cache" / "index.sqlite").exists() or not cache.index.rows() \
        or any((directory / "cache").rglob("*.parquet"))
    if not persisted and bypassed:  # the in-memory line is honest: its index held the rows
        raise RuntimeError("the in-memory line wrote to the disk")
    return seconds, result


def walk_forward_case(data: MarketData, n_trials: int, repeat: int) -> None:
    """Case (1): the three loops interleaved ``repeat`` times; medians are compared."""
    times: dict[str, list[float]] = {"bare": [], "memory": [], "ours": []}
    cpu: dict[str, list[float]] = {"bare": [], "memory": [], "ours": []}
    for _ in range(repeat):
        began = time.process_time()
        times["bare"].append(bare_loop(data, n_trials))
        cpu["bare"].append(time.process_time() - began)
        for name, persisted in (("memory", False), ("ours", True)):
            with tempfile.TemporaryDirectory() as directory:
                began = time.process_time()
                seconds, result = ours(data, n_trials, Path(directory), persisted=persisted)
                cpu[name].append(time.process_time() - began)
                times[name].append(seconds)
                if persisted:
                    stats = foldwise.BacktestCache(directory).stats()
    bare, memory, persisted = (statistics.median(times[k]) for k in ("bare", "memory", "ours"))
    bare_cpu, memory_cpu, persisted_cpu = (statistics.median(cpu[k])
                                           for k in ("bare", "memory", "ours"))
    trials = result.trials
    complete = trials[trials["state"] == "COMPLETE"]
    distinct = len({tuple(sorted(p.items())) for p in complete["params"]})
    folds = len(SPLITTER.folds(data))
    print(f"(1) walk-forward, SMA crossover on GOOG, {folds} folds x {n_trials} TPE trials, "
          f"seed 0 (median of {repeat} interleaved runs)")
    print(f"    bare in-memory Optuna loop (backtest per trial, no cache):   {bare:6.2f} s")
    print(f"    foldwise.optimize, in-memory study and index (not resumable): {memory:6.2f} s"
          f"   ratio {memory / bare:.2f}x   (CPU time {memory_cpu / bare_cpu:.2f}x)")
    print(f"    foldwise.optimize (journal storage, cache, resumable):       {persisted:6.2f} s"
          f"   ratio {persisted / bare:.2f}x   target <= 1.0x   (CPU time "
          f"{persisted_cpu / bare_cpu:.2f}x: what other work on the machine moves less)")
    print(f"    {len(complete)} trials, {distinct} distinct parameter sets "
          f"({1 - distinct / len(complete):.0%} repeats), {stats.full_runs} backtests run")


# --- (1b) the same comparison with a strategy whose backtest costs more -------------------

REVERSION_SPACE = {"lookback": Int(20, 120, step=10), "n_long": Int(1, 5), "n_short": Int(1, 5)}
REVERSION_SPLITTER = WalkForward(train=2520, test=1000)


def reversion_bare(data: MarketData, folds: list, n_trials: int) -> float:
    """The per-fold studies in memory, the mean reversion backtest as the objective."""
    start = time.perf_counter()
    for fold in folds:
        lo, hi = int(fold.train[0]), int(fold.train[-1]) + 1

        def objective(trial: optuna.Trial) -> float:
            params = {"lookback": trial.suggest_int("lookback", 20, 120, step=10),
                      "n_long": trial.suggest_int("n_long", 1, 5),
                      "n_short": trial.suggest_int("n_short", 1, 5)}
            result = backtest(mean_reversion(data, **params), data, costs=COSTS)
            return result.islice(lo, hi).metrics()["sharpe"]  # noqa: B023

        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=study_seed(0, fold.number, 0)))
        study.optimize(objective, n_trials=n_trials)
    return time.perf_counter() - start


def reversion_case(n_trials: int, repeat: int = 1) -> None:
    """Case (1b): the bare loop and foldwise interleaved ``repeat`` times; medians."""
    data = foldwise.datasets.load_sp500()
    folds = REVERSION_SPLITTER.folds(data)
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    cpu: dict[str, list[float]] = {"bare": [], "ours": []}
    for _ in range(repeat):
        began = time.process_time()
        times["bare"].append(reversion_bare(data, folds, n_trials))
        cpu["bare"].append(time.process_time() - began)
        with tempfile.TemporaryDirectory() as directory:
            began = time.process_time()
            start = time.perf_counter()
            result = optimize(mean_reversion, data, REVERSION_SPACE, REVERSION_SPLITTER,
                              n_trials=n_trials, seed=0, costs=COSTS, study="reversion",
                              storage=f"journal:{directory}/studies.journal", cache=directory,
                              show_progress=False, keep_statistics=False, check_lookahead=os.environ.get("LA","1")=="1")
            times["ours"].append(time.perf_counter() - start)
            cpu["ours"].append(time.process_time() - began)
            distinct = foldwise.BacktestCache(directory).stats().full_runs
    bare_seconds, ours_seconds = (statistics.median(times[k]) for k in ("bare", "ours"))
    one = median_time(lambda: mean_reversion.run(data, {"lookback": 60}))
    trials = len(result.trials)
    executed = int(result.trials["backtests"].sum())  # what the trials ran, runs again included
    print(f"(1b) mean reversion on 20 S&P 500 stocks (one backtest {one * 1e3:.0f} ms), "
          f"{len(folds)} folds x {n_trials} TPE trials (median of {repeat})")
    print(f"    bare in-memory Optuna loop: {bare_seconds:6.2f} s   foldwise.optimize: "
          f"{ours_seconds:6.2f} s   ratio {ours_seconds / bare_seconds:.2f}x   target <= 0.7x   "
          f"(CPU time {statistics.median(cpu['ours']) / statistics.median(cpu['bare']):.2f}x; "
          f"{trials} trials, {distinct} distinct sets, {executed} backtests run: "
          f"{executed - distinct} run again)")


# --- a strategy that costs ~20 ms of CPU per backtest --------------------------------------


def heavy_panel() -> MarketData:
    rng = np.random.default_rng(0)
    n_dates, n_assets = 2520, 40
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.015, (n_dates, n_assets)), axis=0))
    return MarketData({"close": close}, pd.bdate_range("2010-01-04", periods=n_dates),
                      [f"S{i}" for i in range(n_assets)])


@foldwise.strategy(name="heavy_crossover")
def heavy_crossover(data, fast=10.0, slow=50.0, passes=1):
    """Crossovers of moving averages over many assets, ``passes`` times (sets its cost)."""
    close = data.array("close")
    signal = np.zeros_like(close)
    for k in range(passes):
        for window in (int(fast) + k, int(slow) + k, int(fast + slow) + k):
            signal += np.sign(close - rolling_mean(close, window))
    return pd.DataFrame(np.nan_to_num(signal) / (3 * passes * data.n_assets), index=data.index,
                        columns=data.assets)


def parallel_case(n_trials: int, repeat: int) -> None:
    data = heavy_panel()
    # The strategy costs ~15-20 ms a backtest; machines differ, so the number of
    # passes is calibrated here (a fixed parameter of the space), on the bare loop of
    # distinct sets that the ceiling below runs: one set timed again and again costs up to
    # 3x more than a loop of sets (glibc's malloc maps and unmaps the large temporaries
    # until its threshold adapts), which once calibrated 7 ms backtests as 20 ms ones.
    _bare_backtests(data, 1, 5, 0)
    one, four = (median_time(lambda p=p: _bare_backtests(data, p, 10, 0)) / 10 for p in (1, 4))
    per_pass = max(1e-4, (four - one) / 3)  # a backtest is a fixed part and its passes
    passes = max(1, round((0.0175 - (one - per_pass)) / per_pass))
    space = {"fast": foldwise.Float(2.0, 40.0), "slow": foldwise.Float(41.0, 250.0),
             "passes": passes}
    # Start the worker pool and import foldwise in it, as a working session would have.
    joblib.Parallel(n_jobs=2)(joblib.delayed(importlib.import_module)("foldwise")
                              for _ in range(4))
    rates: dict[int, list[float]] = {1: [], 2: []}
    bare: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeat):  # interleaved: the machine's speed drifts between runs
        for n_jobs in (1, 2):
            # the machine's own ceiling: the bare backtests alone, in the same worker pool
            start = time.perf_counter()
            done = sum(joblib.Parallel(n_jobs=n_jobs)(
                joblib.delayed(_bare_backtests)(data, passes, 40, part) for part in range(4)))
            bare[n_jobs].append(done / (time.perf_counter() - start))
            with tempfile.TemporaryDirectory() as directory:
                start = time.perf_counter()
                # 6 folds: with whole folds per worker, 2 workers share them evenly
                result = optimize(heavy_crossover, data, space,
                                  WalkForward(train=1000, test=250), n_trials=n_trials,
                                  seed=0, sampler="random", n_jobs=n_jobs, study="heavy",
                                  storage=f"journal:{directory}/studies.journal",
                                  cache=foldwise.BacktestCache(directory, keep_arrays=os.environ.get("KEEP","auto")), show_progress=False,
                                  keep_statistics=False, check_lookahead=os.environ.get("LA","1")=="1")
                seconds = time.perf_counter() - start
                rates[n_jobs].append(int(result.folds["trials_complete"].sum()) / seconds)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    bare_one, bare_two = statistics.median(bare[1]), statistics.median(bare[2])
    print(f"(2) one backtest of the strategy: {1e3 / bare_one:.1f} ms ({passes} passes, in "
          f"the bare loop of one process); trials/s (median of {repeat}): n_jobs=1 "
          f"{one:.1f}, n_jobs=2 {two:.1f}")
    print(f"    n_jobs=2 / n_jobs=1 = {two / one:.2f}x   target >= 1.85x")
    print(f"    the machine's ceiling: the bare backtests alone in 2 worker processes / 1 = "
          f"{bare_two / bare_one:.2f}x ({bare_one:.1f} and {bare_two:.1f} backtests/s); "
          f"foldwise reaches {(two / one) / (bare_two / bare_one):.0%} of it")


def _bare_backtests(data: MarketData, passes: int, count: int, part: int) -> int:
    """``count`` backtests of the heavy strategy with distinct parameters, no foldwise
    around them (what the cores themselves give two processes)."""
    for i in range(count):
        weights = heavy_crossover.func(data, fast=2.0 + (part * count + i) % 38,
                                       slow=41.0 + i, passes=passes)
        backtest(weights, data, costs=COSTS).metrics()
    return count


# --- (3) growth to 20,000 trials ----------------------------------------------------------


def _rss() -> int:
    """Resident set size of this process, bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


class _TrialClock:
    """Times Optuna's sampler per trial and the RSS at each trial's end (benchmark only:
    wraps the TPE sampler's and the journal's methods in this process)."""

    def __init__(self) -> None:
        self.sampler: dict[tuple[int, int], float] = {}
        self.ends: list[tuple[int, int, float, int]] = []  # (study id, number, time, rss)

    def __enter__(self) -> _TrialClock:
        from foldwise.storage._batched import BatchedJournalStorage

        self._patched = []
        clock = self

        def timed(cls, name):
            original = getattr(cls, name)

            def wrapper(sampler, study, trial, *args):
                start = time.perf_counter()
                try:
                    return original(sampler, study, trial, *args)
                finally:
                    key = (study._study_id, trial.number)
                    clock.sampler[key] = clock.sampler.get(key, 0.0) + time.perf_counter() - start

            setattr(cls, name, wrapper)
            self._patched.append((cls, name, original))

        for name in ("sample_relative", "sample_independent", "infer_relative_search_space"):
            timed(optuna.samplers.TPESampler, name)
        original_end = BatchedJournalStorage.set_trial_state_values

        def end(storage, trial_id, state, values=None):
            done = original_end(storage, trial_id, state, values)
            trial = storage.get_trial(trial_id)
            study = storage._replay_result._trial_id_to_study_id[trial_id]
            clock.ends.append((study, trial.number, time.perf_counter(), _rss()))
            return done

        BatchedJournalStorage.set_trial_state_values = end
        self._patched.append((BatchedJournalStorage, "set_trial_state_values", original_end))
        return self

    def __exit__(self, *exc: object) -> None:
        for cls, name, original in self._patched:
            setattr(cls, name, original)


def scale_case(n_folds: int, n_trials: int) -> None:
    """Case (3): one study of ``n_folds`` x ``n_trials``; disk, RSS and per-trial cost."""
    data = foldwise.datasets.load_goog()
    n = len(data)
    test = max(20, (n - 250) // (n_folds + 2))
    splitter = WalkForward(train=n - test * n_folds, test=test)
    with tempfile.TemporaryDirectory() as directory, _TrialClock() as clock:
        root = Path(directory) / ".foldwise"
        start = time.perf_counter()
        result = optimize(sma_crossover, data, SPACE, splitter, constraints=CONSTRAINT,
                          n_trials=n_trials, seed=0, costs=COSTS, study="scale",
                          storage=f"journal:{root}/studies.journal", cache=root,
                          show_progress=False, keep_statistics=False, check_lookahead=os.environ.get("LA","1")=="1")
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        result.keep_report_statistics()  # what optimize(keep_statistics=None) does here
        kept = time.perf_counter() - start
        parts = {"journal": _tree_bytes(root / "studies.journal"),
                 "cache index": sum(_tree_bytes(p) for p in (root / "cache").glob("index*")),
                 "artifacts": _tree_bytes(root / "cache" / "artifacts"),
                 "data copies": _tree_bytes(root / "data")}
        total = _tree_bytes(root)
        stats = foldwise.BacktestCache(root).stats()
    trials = len(clock.ends)
    print(f"(3) growth: SMA crossover on GOOG, {len(result.folds)} folds x {n_trials} TPE "
          f"trials ({trials} trials in all, infeasible included), {seconds:.0f} s")
    print(f"    the report's statistics kept at the end (optimize does this after a call of 30 s"
          f" or more): {kept:.1f} s, {kept / seconds:.1%} of the optimization")
    print(f"    disk used by the foldwise directory: {total / 2**20:.1f} MB   target <= 100 MB")
    print("      " + ", ".join(f"{k} {v / 2**20:.1f} MB" for k, v in parts.items()))
    print(f"      {stats.full_runs} full runs ({stats.with_arrays} with arrays), "
          f"{stats.slice_runs} window entries")
    # RSS growth per trial: a least-squares slope over the trial loop after its first 5 %
    ends = clock.ends[len(clock.ends) // 20:]
    x = np.arange(len(ends), dtype=float)
    rss = np.array([e[3] for e in ends], dtype=float)
    slope = float(np.polyfit(x, rss, 1)[0]) if len(ends) > 2 else math.nan
    first, last = clock.ends[0][3], clock.ends[-1][3]
    print(f"    RSS {first / 2**20:.0f} -> {last / 2**20:.0f} MiB; growth "
          f"{slope / 1024:.2f} KB per trial (slope after the first 5 %), "
          f"{(last - first) / max(1, trials - 1) / 1024:.2f} KB per trial (first to last "
          "trial)   target <= 1 KB per trial")
    marks = [clock.ends[min(trials - 1, trials * k // 10)][3] / 2**20 for k in range(11)]
    print("    RSS at each tenth of the trial loop (MiB): " + " ".join(f"{m:.0f}" for m in marks))
    # foldwise's own cost per trial, by decile of the trial's place in its fold
    by_study: dict[int, list[tuple[int, float]]] = {}
    for study, number, at, _ in clock.ends:
        by_study.setdefault(study, []).append((number, at))
    deciles: list[list[float]] = [[] for _ in range(10)]
    for study, ends_of in by_study.items():
        ends_of.sort()
        for (_, before), (number, at) in itertools.pairwise(ends_of):
            own = at - before - clock.sampler.get((study, number), 0.0)
            deciles[min(9, number * 10 // max(1, ends_of[-1][0] + 1))].append(own)
    medians = [statistics.median(d) * 1e3 if d else math.nan for d in deciles]
    print("    foldwise's own cost per trial (median ms, beyond the sampler) by decile: "
          + " ".join(f"{m:.2f}" for m in medians))
    print(f"    last decile / first decile = {medians[-1] / medians[0]:.2f}   "
          "target within 0.8 .. 1.2")


def memory_split_case(n_folds: int = 6, n_trials: int = 500) -> None:
    """``--memory-split``: whose memory grows per trial, by tracemalloc (Python's heap only,
    not the SQLite page cache or numpy's freed-but-kept pages), between the 1,500th and the
    3,000th trial of an ``n_folds`` x ``n_trials`` study (the cache's bounded memos are
    full by then), grouped by the innermost foldwise
    or Optuna source file of each allocation's traceback (the code that allocated it). tracemalloc slows the run about 15x,
    so the study is smaller than case (3)'s."""
    import collections
    import gc
    import tracemalloc

    from foldwise.storage._batched import BatchedJournalStorage

    data = foldwise.datasets.load_goog()
    test = max(20, (len(data) - 250) // (n_folds + 2))
    splitter = WalkForward(train=len(data) - test * n_folds, test=test)
    marks = (1500, min(3000, n_folds * n_trials))  # the cache's memos are full by 1,500
    snapshots: list[tracemalloc.Snapshot] = []
    original = BatchedJournalStorage.set_trial_state_values
    ended = [0]

    def end(storage, trial_id, state, values=None):
        done = original(storage, trial_id, state, values)
        ended[0] += 1
        if ended[0] in marks:
            gc.collect()
            snapshots.append(tracemalloc.take_snapshot())
        return done

    BatchedJournalStorage.set_trial_state_values = end
    tracemalloc.start(8)
    try:
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            optimize(sma_crossover, data, SPACE, splitter, constraints=CONSTRAINT,
                     n_trials=n_trials, seed=0, costs=COSTS, study="memory",
                     storage=f"journal:{root}/studies.journal", cache=root,
                     show_progress=False)
    finally:
        tracemalloc.stop()
        BatchedJournalStorage.set_trial_state_values = original
    trials = marks[1] - marks[0]
    owners: collections.Counter[str] = collections.Counter()
    for stat in snapshots[1].compare_to(snapshots[0], "traceback"):
        files = [frame.filename for frame in reversed(stat.traceback)]  # innermost first
        owner = next((f"foldwise {f.split('foldwise/')[-1]}" if "/foldwise/" in f
                      else f"optuna {f.split('optuna/')[-1]}" for f in files
                      if "/foldwise/" in f or "/optuna/" in f), "other")
        owners[owner] += stat.size_diff
    print(f"(3m) Python heap growth per trial between trials {marks[0]} and {marks[1]} of a "
          f"{n_folds} x {n_trials} study (tracemalloc): "
          f"{sum(owners.values()) / trials:.0f} bytes")
    for owner, size in owners.most_common(8):
        print(f"      {size / trials:7.0f} B/trial  {owner}")
    print("    (Optuna's storages/journal: its replay of the journal, every trial of every "
          "study in memory, as its JournalStorage keeps them; the cache's key and record "
          "memos stop growing at 4,096 entries, before trial 1,500)")


def _load() -> str:
    """The 1, 5 and 15-minute load averages of the machine."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--scale", action="store_true",
                        help="only case (3): growth to --folds x --trials trials")
    parser.add_argument("--folds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--cases", default="1,1b,2",
                        help="which of the cases 1, 1b and 2 to run (comma-separated)")
    parser.add_argument("--memory-split", action="store_true",
                        help="only: whose Python memory grows per trial (tracemalloc)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="interleaved runs per case (default 3, case 1b 1; --quick 1)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.scale:
        scale_case(args.folds, args.trials)
        return
    if args.memory_split:
        memory_split_case()
        return
    cases = set(args.cases.split(","))
    print(_load())
    n_trials = 40 if args.quick else 200
    repeat = args.repeat or (1 if args.quick else 3)
    if "1" in cases:
        walk_forward_case(foldwise.datasets.load_goog(), n_trials, repeat)
    if "1b" in cases:
        reversion_case(40 if args.quick else 200, args.repeat or 1)
    if "2" in cases:
        parallel_case(30 if args.quick else 100, repeat)
    print(_load())


if __name__ == "__main__":
    main()
