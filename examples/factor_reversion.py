"""Cross-sectional mean reversion on 20 S&P 500 stocks, written with the Pipeline API.

The factor is Zipline's ``Reversion`` example (minus the imports); the strategy buys the
stocks furthest below their moving average and sells those furthest above, among the less
volatile half of the universe, rebalancing weekly. The window of the factor and the number
of names per leg are strategy parameters: the loop below tries a few of each, as an
optimizer would, and the volatility screen — which no tried parameter changes — is
computed once and reused by every run.

    python examples/factor_reversion.py
"""

from __future__ import annotations

import numpy as np

from foldwise import Costs
from foldwise.datasets import load_sp500
from foldwise.pipeline import (
    CustomFactor,
    EquityPricing,
    FactorStrategy,
    Pipeline,
    run_pipeline,
    term_cache,
)
from foldwise.pipeline.factors import AnnualizedVolatility


class Reversion(CustomFactor):
    inputs = [EquityPricing.close]
    window_length = 60

    def compute(self, today, assets, out, prices):
        out[:] = -prices[-1] / np.mean(prices, axis=0)


def make_pipeline(window: int = 60) -> Pipeline:
    """Reversion over ``window`` bars, among the calmer half of the stocks."""
    calm = AnnualizedVolatility(window_length=126).percentile_between(0, 50)
    return Pipeline({"reversion": Reversion(window_length=window)}, screen=calm)


def main() -> None:
    data = load_sp500().slice("2005-01-01")
    today = run_pipeline(make_pipeline(), data, data.index[-1])
    print(f"Pipeline output for {data.index[-1].date()} (the calmer half, by reversion):")
    print(today.droplevel("date").sort_values("reversion", ascending=False).round(4))

    strategy = FactorStrategy(make_pipeline, n_long=3, n_short=3, rebalance="W")
    print(f"\nParameters of {strategy.name}: {sorted(strategy.parameters)}")
    costs = Costs(commission_bps=1, slippage_bps=4)
    print(f"\n{'window':>6} {'names':>5} {'sharpe':>7} {'annual':>7} {'max dd':>7} {'turnover':>8}")
    for window in (20, 60, 120):
        for names in (2, 4):
            result = strategy.run(data, {"window": window, "n_long": names, "n_short": names},
                                  costs=costs)
            m = result.metrics()
            print(f"{window:>6} {names:>5} {m['sharpe']:>7.2f} {m['annual_return']:>7.2%} "
                  f"{m['max_drawdown']:>7.2%} {m['average_turnover']:>8.3f}")
    print(f"\n{term_cache}")


if __name__ == "__main__":
    main()
