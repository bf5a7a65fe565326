"""foldwise: walk-forward parameter optimization of trading strategies.

The public API is re-exported here; everything else is private to its module.

>>> import foldwise
>>> data = foldwise.datasets.load_goog()
>>> result = foldwise.examples.sma_crossover.run(data, {"fast": 10, "slow": 50})
>>> sorted(result.metrics())[:3]
['annual_return', 'annual_volatility', 'average_turnover']
"""

from __future__ import annotations

from foldwise import datasets, examples, metrics, pipeline
from foldwise.backtest import BacktestResult, Costs, backtest
from foldwise.data import MarketData
from foldwise.errors import FoldwiseError
from foldwise.pipeline import (
    CustomFactor,
    EquityPricing,
    FactorStrategy,
    Pipeline,
    run_pipeline,
)
from foldwise.strategy import Strategy, as_strategy, check_causal, strategy

__version__ = "0.1.0"

__all__ = [
    "BacktestResult",
    "Costs",
    "CustomFactor",
    "EquityPricing",
    "FactorStrategy",
    "FoldwiseError",
    "MarketData",
    "Pipeline",
    "Strategy",
    "__version__",
    "as_strategy",
    "backtest",
    "check_causal",
    "datasets",
    "examples",
    "metrics",
    "pipeline",
    "run_pipeline",
    "strategy",
]
