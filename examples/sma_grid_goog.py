"""Backtest a small grid of SMA-crossover parameters on GOOG and rank them.

Run: python examples/sma_grid_goog.py

A first look at a parameter space before a walk-forward optimization: every cell is a
full-history backtest with costs, so the best cell here is an in-sample result.
"""

from __future__ import annotations

import pandas as pd

import foldwise
from foldwise.examples import sma_crossover


def main() -> pd.DataFrame:
    data = foldwise.datasets.load_goog()
    costs = foldwise.Costs(commission_bps=1, slippage_bps=2)
    rows = []
    for fast in (5, 10, 20, 40):
        for slow in (50, 100, 200):
            metrics = sma_crossover.run(data, {"fast": fast, "slow": slow}, costs=costs).metrics()
            rows.append({"fast": fast, "slow": slow, **metrics})
    table = pd.DataFrame(rows).sort_values("sharpe", ascending=False)
    columns = ["fast", "slow", "sharpe", "annual_return", "max_drawdown", "n_trades"]
    print(table[columns].to_string(index=False, float_format="{:.3f}".format))
    return table


if __name__ == "__main__":
    main()
