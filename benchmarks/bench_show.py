"""`foldwise show` of a 20-fold x 1,000-trial study, its overfitting statistics, and PBO.

Run:
    python benchmarks/bench_show.py --build /tmp/show-study   # once (minutes): the study
    python benchmarks/bench_show.py /tmp/show-study [--repeat 3] [--quick]

The study: SMA crossover on the bundled GOOG data (fast 5..50, slow 20..200, fast < slow),
20 walk-forward folds (500 bars train, 80 test), 1,000 TPE trials per fold, seed 0, 2 bps
costs, n_jobs=2, study ``show20x1000`` in ``DIR/studies.journal`` with its cache in
``DIR``. Build it again after a change to ``sma_crossover``'s code: runs whose arrays the
cache did not keep are re-created from the study, which needs the same code.

(1) ``foldwise show show20x1000 --dir DIR`` in a child process: wall time and peak RSS
    (``resource.getrusage(RUSAGE_CHILDREN)`` of an intermediate process that runs only
    that command), median of ``--repeat`` runs, three ways: cold (the records' snapshot
    and the kept statistics removed: the journal is replayed and every statistic
    computed), with the snapshot only (what an optimize that kept no statistics leaves:
    ``keep_statistics=False`` or a call under 30 s; the statistics are computed and kept),
    and with both (what ``optimize`` leaves after a long call, and every later review of
    the study: the target's case); then
    with ``--no-overfitting``; then, in one child, the time of each phase with nothing
    kept (import, study load, tables, ``overfitting()``, data snooping). The code path before
    the streamed statistics cannot run beside ours, so its figure is printed as measured
    then: 32.8 s and 6.96 GB (a study of 1,580 distinct sets). Target: <= 5 s, < 1 GB.
    The same study run with the code before (this study has 4,824 distinct sets whose
    arrays the cache re-computes): 33.6 s, 6.08 GB. Since then, on the same study and
    machine (2-core, shared), within minutes of each other at a load average of 0.7-2:
    25.6 s / 0.72 GB before the journal lines were checked on their own bytes,
    ``import foldwise`` left out scipy.stats and scipy.spatial, and the snooping section
    ran SPA and StepM on shared resamples with 500 replications; 19.4 s / 0.69 GB after
    (21.2 s against 27.6 s at a load of 2-3). Phases after / before (one run each, so
    within noise): import 1.8 / 2.1 s, load 6.4 / 8.4 s, tables 1.0 / 1.3 s,
    ``overfitting()`` 3.1 / 4.2 s, snooping 6.5 / 6.1 s (this phase renders the whole
    report again; in the --repeat runs the overfitting section adds 8.4 s against 14.0 s).
(2) ``result.overfitting()`` with N distinct sets (``max_configurations=1580``, and all
    of them), each on a freshly loaded result: median. Before: 26 s with 1,580 sets
    (runs read from artifacts); on this study 5.2 s with 1,580 and 14.7 s with 4,824 (runs
    re-computed). Target: <= 2 s.
(3) PBO alone (``probability_of_backtest_overfitting``, S = 16: 12,870 combinations) on
    synthetic 2,148 x N returns, N = 1,580 and 20,000, each run in a child process: ours
    next to the straightforward vectorized CSCV (every combination's in- and
    out-of-sample Sharpe ratios as 12,870 x N arrays: the implementation before
    streaming, kept below as the reference), time (median) and peak RSS, and the ratio.
    The reference gets an address-space limit (``--reference-limit-gb``, default 8): at
    N = 20,000 one of its arrays is 2 GB and it holds about ten, so it is reported as not
    fitting when it fails for memory.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

STUDY = "show20x1000"
BEFORE_SHOW = (32.8, 6.96)  # seconds, GB: measured before the overfitting statistics streamed
BEFORE_OVERFITTING = 26.0  # seconds with 1,580 distinct sets
ROWS = 2148  # bars of the bundled GOOG data


# --- the study -------------------------------------------------------------------------------


def build(directory: Path) -> None:
    """Run the 20-fold x 1,000-trial study into ``directory`` (resumes if interrupted)."""
    import foldwise
    from foldwise import datasets
    from foldwise.examples import sma_crossover

    data = datasets.load_goog()
    splitter = foldwise.WalkForward(train=500, test=80)
    print(f"building {STUDY}: {len(splitter.folds(data))} folds x 1000 TPE trials in "
          f"{directory} ...", flush=True)
    start = time.perf_counter()
    result = foldwise.optimize(
        sma_crossover, data, {"fast": foldwise.Int(5, 50), "slow": foldwise.Int(20, 200)},
        splitter, constraints="fast < slow", metric="sharpe", n_trials=1000, study=STUDY,
        storage=f"journal:{directory}/studies.journal", cache=directory, seed=0, costs=2.0,
        n_jobs=2, show_progress=False, keep_statistics=False)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    result.keep_report_statistics()  # what optimize(keep_statistics=None) does after this
    kept = time.perf_counter() - start
    print(f"built in {seconds:.0f} s: {len(result.trials)} trials; the report's statistics "
          f"kept at its end (what optimize does after a call of 30 s or more) in {kept:.1f} s,"
          f" {kept / seconds:.1%} of the optimization")


# --- measuring a command in a child process --------------------------------------------------


def _measured_child(command: list[str]) -> None:
    """Run ``command``; print its wall time and peak RSS (this process runs nothing else,
    so RUSAGE_CHILDREN is that command's)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KB on Linux
    print(json.dumps({"seconds": seconds, "peak": peak, "returncode": done.returncode,
                      "stdout": done.stdout[-4000:], "stderr": done.stderr[-4000:]}))


def measure(command: list[str]) -> dict:
    """Wall time, peak RSS and output of ``command`` run in a fresh child process."""
    out = subprocess.run([sys.executable, __file__, "--measure-child", "--", *command],
                         stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_runs(command: list[str], repeat: int) -> tuple[float, float, dict]:
    runs = [measure(command) for _ in range(repeat)]
    for run in runs:
        if run["returncode"] != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{run['stderr']}")
    return (statistics.median(r["seconds"] for r in runs),
            statistics.median(r["peak"] for r in runs), runs[-1])


def _phases_child(directory: str) -> None:
    """In a child process: where ``foldwise show``'s time goes, phase by phase (JSON)."""
    start = time.perf_counter()
    import foldwise

    phases = {"import foldwise": time.perf_counter() - start}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        value = call()
        phases[name] = time.perf_counter() - began
        return value

    _forget(Path(directory), snapshot=True)
    result = timed("load_result (study journal replay, records)", lambda: foldwise.load_result(
        STUDY, storage=f"journal:{directory}/studies.journal", cache=directory))
    result.statistics = None  # every statistic computed, nothing kept
    timed("load_result again (from the records' snapshot)", lambda: foldwise.load_result(
        STUDY, storage=f"journal:{directory}/studies.journal", cache=directory))
    timed("report without overfitting (folds, curve, verdict)",
          lambda: result.text_report(overfitting=False))
    timed("result.overfitting() (PBO, PSR, DSR)", result.overfitting)
    timed("the rest of the overfitting section (data snooping)",
          lambda: result.text_report(overfitting=True))
    print(json.dumps(phases))


def _forget(directory: Path, snapshot: bool) -> None:
    """Remove the study's kept statistics (and its records' snapshot)."""
    shutil.rmtree(directory / "statistics", ignore_errors=True)
    if snapshot:
        shutil.rmtree(directory / "studies.journal.snapshots", ignore_errors=True)


def _checked(run: dict, command: list[str]) -> dict:
    if run["returncode"] != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{run['stderr']}")
    return run


def show_case(directory: Path, repeat: int) -> None:
    """Case (1): cold (the journal replayed, every statistic computed), the snapshot only
    (statistics computed and kept), and both kept (as a long ``optimize`` leaves the study,
    and every review from then on)."""
    base = [sys.executable, "-m", "foldwise.cli", "show", STUDY, "--dir", str(directory)]
    cold, first = [], []
    for _ in range(repeat):  # interleaved: the machine's speed drifts between runs
        _forget(directory, snapshot=True)
        cold.append(_checked(measure(base), base))
        _forget(directory, snapshot=False)
        first.append(_checked(measure(base), base))
    seconds, peak, last = _median_runs(base, repeat)
    line = next((x for x in last["stdout"].splitlines() if x.startswith("overfitting:")), "")
    bare_seconds, bare_peak, _ = _median_runs([*base, "--no-overfitting"], repeat)

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"(1) foldwise show {STUDY} (median of {repeat}, each in a child process)")
    print(f"    {line}")
    print(f"    cold (journal replayed, statistics computed):  {median(cold, 'seconds'):6.1f} s"
          f"   peak RSS {median(cold, 'peak') / 2**30:5.2f} GB")
    print(f"    snapshot only (optimize kept no statistics; computed and kept): "
          f"{median(first, 'seconds'):6.1f} s   peak RSS {median(first, 'peak') / 2**30:5.2f} GB")
    print(f"    as optimize leaves it, and again (snapshot, kept statistics): {seconds:6.1f} s"
          "   peak RSS "
          f"{peak / 2**30:5.2f} GB   before {BEFORE_SHOW[0]} s / {BEFORE_SHOW[1]} GB   "
          "target <= 5 s, < 1 GB")
    print(f"    --no-overfitting:     {bare_seconds:6.1f} s   peak RSS {bare_peak / 2**30:5.2f} GB")
    run = measure([sys.executable, __file__, "--phases-child", str(directory)])
    print("    where the time goes when nothing is kept (one run, in process):")
    for name, value in json.loads(run["stdout"].strip().splitlines()[-1]).items():
        print(f"      {name:<52} {value:6.2f} s")


# --- result.overfitting() ----------------------------------------------------------------------


def overfitting_case(directory: Path, repeat: int) -> None:
    """Case (2)."""
    import foldwise

    def load() -> foldwise.WalkForwardResult:
        result = foldwise.load_result(STUDY, storage=f"journal:{directory}/studies.journal",
                                      cache=directory)
        result.statistics = None  # computed each time, not read back from what is kept
        return result

    result = load()
    total = len({k for k in result.trials[result.trials["state"] == "COMPLETE"]["params"]
                 .map(lambda p: json.dumps(p, sort_keys=True))})
    print(f"(2) result.overfitting(), a freshly loaded result each time (median of {repeat})")
    for count in (1580, total):
        times = []
        for _ in range(repeat):
            result = load()
            start = time.perf_counter()
            stats = result.overfitting(max_configurations=count)
            times.append(time.perf_counter() - start)
        label = f"{int(stats['n_configurations']):,} distinct sets"
        target = (f"   before {BEFORE_OVERFITTING:.0f} s   target <= 2 s" if count == 1580
                  else "")
        print(f"    {label:<22} {statistics.median(times):6.2f} s   PBO {stats['pbo']:.4f}"
              f"{target}")


# --- PBO alone, ours and the reference ------------------------------------------------------


def reference_pbo(matrix: np.ndarray, n_splits: int = 16) -> float:
    """The straightforward vectorized CSCV (the implementation before streaming): every
    combination's in- and out-of-sample Sharpe ratios as ``C(S, S/2) x N`` arrays."""
    matrix = matrix[~np.isnan(matrix).any(axis=1)]
    rows = (matrix.shape[0] // n_splits) * n_splits
    matrix = matrix[matrix.shape[0] - rows:]
    length = rows // n_splits
    shift = matrix.mean(axis=0)
    centred = matrix.reshape(n_splits, length, matrix.shape[1]) - shift
    sums = centred.sum(axis=1)
    squares = (centred * centred).sum(axis=1)
    chosen = np.array([[1.0 if i in c else 0.0 for i in range(n_splits)]
                       for c in combinations(range(n_splits), n_splits // 2)])
    half = length * (n_splits // 2)

    def sharpe(total: np.ndarray, total_squares: np.ndarray) -> np.ndarray:
        mean = total / half
        std = np.sqrt(np.maximum((total_squares - total * mean) / (half - 1), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(std > 1e-14, (mean + shift) / std, np.nan)

    in_sums, in_squares = chosen @ sums, chosen @ squares
    is_perf = sharpe(in_sums, in_squares)
    oos_perf = sharpe(sums.sum(axis=0) - in_sums, squares.sum(axis=0) - in_squares)
    usable = ~np.isnan(is_perf).all(axis=1)
    is_perf, oos_perf = is_perf[usable], oos_perf[usable]
    best = np.nanargmax(is_perf, axis=1)
    lines = np.arange(len(best))
    filled = np.where(np.isnan(oos_perf), -np.inf, oos_perf)
    picked = filled[lines, best][:, None]
    rank = (filled < picked).sum(axis=1) + ((filled == picked).sum(axis=1) + 1) / 2.0
    omega = rank / (matrix.shape[1] + 1)
    return float(np.mean(np.log(omega / (1 - omega)) <= 0))


def _pbo_child(which: str, n_sets: int, repeat: int, limit_gb: float) -> None:
    """In a child process: time PBO on seeded synthetic returns (prints JSON)."""
    rng = np.random.default_rng(0)
    # column-major, as the aggregator builds it (each set's returns contiguous), filled a
    # block at a time so that the peak holds the matrix once
    matrix = np.empty((ROWS, n_sets), order="F")
    for lo in range(0, n_sets, 1000):
        width = min(1000, n_sets - lo)
        matrix[:, lo:lo + width] = (rng.normal(0.0003, 0.01, (ROWS, width))
                                    + rng.normal(0.0, 0.00002, width))
    if which == "reference":
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        run = lambda: reference_pbo(np.ascontiguousarray(matrix))  # noqa: E731
    else:
        from foldwise.stats import probability_of_backtest_overfitting

        run = lambda: probability_of_backtest_overfitting(matrix).pbo  # noqa: E731
    times, value = [], math.nan
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            value = run()
            times.append(time.perf_counter() - start)
    except MemoryError:
        print(json.dumps({"seconds": None, "pbo": None}))
        return
    print(json.dumps({"seconds": statistics.median(times), "pbo": value}))


def pbo_case(repeat: int, sizes: list[int], limit_gb: float) -> None:
    """Case (3)."""
    print(f"(3) PBO alone, S = 16 (12,870 combinations), {ROWS} x N synthetic returns, "
          f"each in a child process (median of {repeat})")
    for n_sets in sizes:
        found = {}
        for which in ("ours", "reference"):
            run = measure([sys.executable, __file__, "--pbo-child", which, str(n_sets),
                           str(repeat), str(limit_gb)])
            if run["returncode"] != 0:
                if which == "reference" and "MemoryError" in run["stderr"]:
                    found[which] = (None, run["peak"], None)
                    continue
                raise SystemExit(f"PBO child failed:\n{run['stderr']}")
            child = json.loads(run["stdout"].strip().splitlines()[-1])
            found[which] = (child["seconds"], run["peak"], child["pbo"])
        ours, reference = found["ours"], found["reference"]
        print(f"    N = {n_sets:>6,}  ours {ours[0]:6.2f} s  peak RSS {ours[1] / 2**30:5.2f} GB"
              f"  PBO {ours[2]:.4f}")
        if reference[0] is None:
            print(f"    {'':10}  reference: did not fit in {limit_gb:g} GB of address space "
                  f"(MemoryError; one 12,870 x N array is "
                  f"{12870 * n_sets * 8 / 2**30:.1f} GB)")
        else:
            same = "same PBO" if reference[2] == ours[2] else f"PBO {reference[2]:.4f}"
            print(f"    {'':10}  reference {reference[0]:6.2f} s  peak RSS "
                  f"{reference[1] / 2**30:5.2f} GB  ({same})   ratio: time "
                  f"{ours[0] / reference[0]:.2f}x, memory {ours[1] / reference[1]:.2f}x")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure-child":
        _measured_child(sys.argv[3:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--phases-child":
        _phases_child(sys.argv[2])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--pbo-child":
        which, n_sets, repeat, limit_gb = sys.argv[2:6]
        _pbo_child(which, int(n_sets), int(repeat), float(limit_gb))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="the study's directory")
    parser.add_argument("--build", action="store_true", help="build the study there first")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="one run each, PBO at N = 1,580 only")
    parser.add_argument("--reference-limit-gb", type=float, default=8.0)
    args = parser.parse_args()
    if args.build:
        build(args.directory)
        return
    if not (args.directory / "studies.journal").is_file():
        raise SystemExit(f"no study in {args.directory}: build it first with --build")
    repeat = 1 if args.quick else args.repeat
    show_case(args.directory, repeat)
    overfitting_case(args.directory, repeat)
    pbo_case(repeat, [1580] if args.quick else [1580, 20_000], args.reference_limit_gb)


if __name__ == "__main__":
    main()
