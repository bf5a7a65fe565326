"""Hansen's SPA test of foldwise.snooping next to arch.bootstrap.SPA, in the same run.

Run: python benchmarks/bench_snooping.py [--quick] [--arch-reps 200]

The target case: 1,000 stationary-bootstrap replications over 5,000 parameter sets x
2,500 days (a daily study of ten years), against a benchmark series. Target: under 10 s
on two cores, with memory bounded by the returns matrix plus a few batch arrays (never a
replications x sets x days array).

(1) foldwise: spa_test with the block length given (the same as arch's) and with
    block_length="auto" (one more FFT pass over the matrix), median of 3 runs each, wall
    and CPU seconds (the CPU time counts both BLAS threads; on a machine busy with other
    work the wall time grows with the load, the CPU time much less); the peak memory
    traced (tracemalloc sees numpy's allocations) beyond the inputs.
(2) arch: SPA on the same returns (as losses: -returns) and benchmark, the same block
    length, stationary bootstrap, with fewer replications (--arch-reps, 200 by default:
    it took 45 s here), one run; its time scaled to 1,000 replications is the baseline
    of the ratio. Its start-up (the long-run variances, a loop over every lag) is not
    scaled: the scaled figure is a lower bound, the ratio an underestimate of ours.
    Skipped with the reason when arch is not installed.

--quick: 1,000 sets x 1,000 days, for a smoke run.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from _timing import row
from foldwise.snooping import spa_test

REPS = 1000


def make_returns(n_days: int, n_sets: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Daily returns of ``n_sets`` parameter sets sharing a market factor (as a study's
    neighbouring sets do), three of them with an edge, and a buy-and-hold benchmark."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0003, 0.01, size=n_days)
    exposure = rng.uniform(0.2, 1.0, size=n_sets)
    returns = market[:, None] * exposure + rng.normal(0.0, 0.006, size=(n_days, n_sets))
    returns[:, :3] += 0.0004
    return returns, market


def time_ours(returns: np.ndarray, benchmark: np.ndarray, block: float | str,
              repeat: int = 3) -> tuple[float, float, object]:
    """Median wall seconds, median CPU seconds (all threads of the process: on a machine
    shared with other work the wall time grows, the CPU time much less), and the result."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = spa_test(returns, benchmark, n_bootstrap=REPS, block_length=block, seed=0)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return statistics.median(walls), statistics.median(cpus), result


def peak_memory(returns: np.ndarray, benchmark: np.ndarray, block: float | str) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    spa_test(returns, benchmark, n_bootstrap=REPS, block_length=block, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def time_arch(returns: np.ndarray, benchmark: np.ndarray, block: float,
              reps: int) -> tuple[float, object] | None:
    try:
        from arch.bootstrap import SPA
    except ImportError as exc:
        print(f"arch: skipped ({exc}); pip install arch to compare")
        return None
    start = time.perf_counter()
    spa = SPA(-benchmark, -returns, block_size=block, reps=reps, bootstrap="stationary",
              seed=0)
    spa.compute()
    return time.perf_counter() - start, spa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 sets x 1,000 days")
    parser.add_argument("--arch-reps", type=int, default=200,
                        help="replications for arch's SPA (its time is scaled to 1,000)")
    args = parser.parse_args()
    n_days, n_sets = (1000, 1000) if args.quick else (2500, 5000)
    returns, benchmark = make_returns(n_days, n_sets)
    matrix_mb = returns.nbytes / 2**20
    print(f"SPA test, {REPS} replications, {n_sets} sets x {n_days} days "
          f"(returns matrix {matrix_mb:.0f} MB)")

    spa_test(returns[:, :1], benchmark, n_bootstrap=1, seed=0)  # warm-up imports
    auto_seconds, auto_cpu, auto = time_ours(returns, benchmark, "auto")
    block = round(float(auto.block_length), 2)  # type: ignore[attr-defined]
    fixed_seconds, fixed_cpu, fixed = time_ours(returns, benchmark, block)
    print(f"foldwise, block length {block} given:   {fixed_seconds:6.2f} s "
          f"(CPU {fixed_cpu:5.2f} s)   p = {fixed.pvalues}")  # type: ignore[attr-defined]
    print(f"foldwise, block_length='auto':        {auto_seconds:6.2f} s "
          f"(CPU {auto_cpu:5.2f} s)   target < 10 s")
    peak = peak_memory(returns, benchmark, "auto")
    print(f"foldwise peak memory traced beyond the inputs: {peak / 2**20:6.1f} MB "
          f"({peak / returns.nbytes:.2f}x the returns matrix; a replications x sets x "
          f"days array would be {REPS * returns.nbytes / 2**30:.0f} GB)")

    theirs = time_arch(returns, benchmark, block, args.arch_reps)
    if theirs is not None:
        seconds, spa = theirs
        scaled = seconds * REPS / args.arch_reps
        print(f"arch, {args.arch_reps} replications: {seconds:6.1f} s   "
              f"p = {spa.pvalues.round(3).to_dict()}")  # type: ignore[attr-defined]
        print(row(f"SPA {REPS} reps, {n_sets} x {n_days} (arch scaled from "
                  f"{args.arch_reps})", fixed_seconds, scaled, unit="s", target="< 10 s"))
        print(f"foldwise is {scaled / fixed_seconds:.0f}x faster than arch's SPA")


if __name__ == "__main__":
    main()
