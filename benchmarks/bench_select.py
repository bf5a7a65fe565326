"""select=: what each rule keeps out of sample, and what choosing costs.

Run: python benchmarks/bench_select.py            (about two minutes)

(a) A known structure: one asset whose next return is ``0.0018 * hint`` plus noise, and a
    strategy with one parameter x in 0..79: for x >= 40 it trades ``sign(hint)`` (a real
    edge, annual Sharpe about 2.3, the same for every x: a broad ridge); for x < 40 a coin
    sequence of its own per x (no edge: whichever coin is luckiest on a training window is
    a narrow spike). Walk-forward 125/125 bars, 60 TPE trials per fold, seeds 0..4. Per
    rule: the stitched out-of-sample Sharpe ratio and the share of folds that chose the
    ridge. One study per seed, read under each rule (a resume with another ``select``: no
    trial runs again; top_k_mean evaluates its averages).
(b) Real data: the SMA crossover on GOOG, WalkForward("2Y", "6M"), 40 trials per fold,
    seeds 0..4: the stitched out-of-sample Sharpe ratio per rule. No known answer.
(c) The cost of choosing: ``choose`` on one fold of n distinct sets of three parameters
    (an int, a log-scaled float, a categorical), plateau and top_k_mean against best
    (which sorts the trials once). Plateau compares every pair: O(n^2).
"""

from __future__ import annotations

import os
import statistics
import tempfile

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

import foldwise
from _timing import median_time, row
from foldwise import Int, MarketData, WalkForward, strategy
from foldwise.aggregate import Best, Plateau, TopKMean, choose
from foldwise.examples import sma_crossover
from foldwise.records import StoredTrial, TrialRecord
from foldwise.space import Categorical, Float, SearchSpace

RULES = ("best", "plateau", "top_k_mean")
SEEDS = range(5)
N_BARS = 1500
NOISE = 40


def spike_and_ridge_panel(seed: int, beta: float = 0.0018) -> MarketData:
    rng = np.random.default_rng(seed)
    hint = rng.normal(size=N_BARS)
    returns = np.zeros(N_BARS)
    returns[1:] = beta * hint[:-1] + 0.01 * rng.normal(size=N_BARS - 1)
    close = 100 * np.cumprod(1 + returns)
    return MarketData({"close": close[:, None], "hint": hint[:, None]},
                      pd.bdate_range("2010-01-01", periods=N_BARS), ["X"])


@strategy(name="spike_or_ridge")
def spike_or_ridge(data, x=0):
    if x >= NOISE:
        return np.sign(data.array("hint"))
    coin = np.random.default_rng(1000 + x).choice([-1.0, 1.0], size=(10_000, 1))
    return coin[: data.n_dates]


def under_each_rule(arguments: dict) -> dict[str, foldwise.WalkForwardResult]:
    return {rule: foldwise.optimize(**arguments, select=rule) for rule in RULES}


def known_structure() -> None:
    print("(a) spike of lucky noise (x < 40) next to a real ridge (x >= 40), 11 folds")
    print(f"{'seed':>4}  " + "  ".join(f"{r + ' OOS Sharpe':>22} {'ridge':>6}" for r in RULES))
    sharpes: dict[str, list[float]] = {rule: [] for rule in RULES}
    for seed in SEEDS:
        results = under_each_rule(dict(
            strategy=spike_or_ridge, data=spike_and_ridge_panel(seed), space={"x": Int(0, 79)},
            splitter=WalkForward(train=125, test=125), n_trials=60, seed=seed, top_k=3,
            study=f"spike-{seed}", show_progress=False, check_lookahead=False))
        cells = []
        for rule, result in results.items():
            ridge = np.mean([p["x"] >= NOISE for p in result.folds["params"]])
            sharpes[rule].append(result.oos_metrics["sharpe"])
            cells.append(f"{sharpes[rule][-1]:22.2f} {ridge:6.0%}")
        print(f"{seed:>4}  " + "  ".join(cells))
    print("median  " + "  ".join(f"{statistics.median(sharpes[r]):22.2f} {'':6}" for r in RULES))


def goog() -> None:
    print("\n(b) SMA crossover on GOOG, WalkForward('2Y', '6M'), 40 trials per fold")
    print(f"{'seed':>4}  " + "  ".join(f"{r + ' OOS Sharpe':>22}" for r in RULES))
    data = foldwise.datasets.load_goog()
    sharpes: dict[str, list[float]] = {rule: [] for rule in RULES}
    for seed in SEEDS:
        results = under_each_rule(dict(
            strategy=sma_crossover, data=data,
            space={"fast": Int(5, 50), "slow": Int(20, 200, step=5)}, constraints="fast < slow",
            splitter=WalkForward(train="2Y", test="6M"), n_trials=40, seed=seed, costs=3,
            study=f"goog-{seed}", show_progress=False))
        for rule, result in results.items():
            sharpes[rule].append(result.oos_metrics["sharpe"])
        print(f"{seed:>4}  " + "  ".join(f"{sharpes[r][-1]:22.2f}" for r in RULES))
    print("median  " + "  ".join(f"{statistics.median(sharpes[r]):22.2f}" for r in RULES))


def cost() -> None:
    print("\n(c) choose() on one fold of n distinct sets (int, log float, categorical)")
    space = SearchSpace({"n": Int(2, 200), "rate": Float(1e-4, 1e-1, log=True),
                         "side": Categorical(["long", "short", "both"])}).describe()
    rng = np.random.default_rng(0)
    for n in (100, 1000, 3000):
        trials = [StoredTrial(i, TrialState.COMPLETE, float(rng.normal()), TrialRecord(params={
            "n": int(rng.integers(2, 201)), "rate": float(10 ** rng.uniform(-4, -1)),
            "side": str(rng.choice(["long", "short", "both"]))})) for i in range(n)]
        best = median_time(lambda t=trials: choose(t, "maximize", 5, Best(), space), repeat=5)
        for rule in (Plateau(), TopKMean()):
            ours = median_time(lambda t=trials, r=rule: choose(t, "maximize", 5, r, space),
                               repeat=5)
            print(row(f"{rule.name} vs best, n = {n}", ours, best, unit="ms"))


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as home:
        os.environ["FOLDWISE_DIR"] = home
        known_structure()
        goog()
    cost()


if __name__ == "__main__":
    main()
