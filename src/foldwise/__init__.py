"""foldwise: walk-forward parameter optimization of trading strategies.

The public API is re-exported here; everything else is private to its module.

>>> import foldwise
>>> data = foldwise.datasets.load_goog()
>>> result = foldwise.examples.sma_crossover.run(data, {"fast": 10, "slow": 50})
>>> sorted(result.metrics())[:3]
['annual_return', 'annual_volatility', 'average_turnover']
"""

from __future__ import annotations

from foldwise import (
    aggregate,
    datasets,
    examples,
    metrics,
    pipeline,
    records,
    snooping,
    space,
    splits,
    stats,
)
from foldwise._version import __version__
from foldwise.aggregate import Criteria, Plateau, TopKMean, WalkForwardResult
from foldwise.backtest import BacktestArrays, BacktestResult, BacktestSettings, Costs, backtest
from foldwise.cache import BacktestCache, cached_backtest
from foldwise.data import MarketData
from foldwise.errors import FoldwiseError
from foldwise.optimizer import (
    delete_study,
    list_studies,
    load_result,
    optimize,
    walk_forward_matrix,
)
from foldwise.pipeline import (
    CustomFactor,
    EquityPricing,
    FactorStrategy,
    Pipeline,
    run_pipeline,
)
from foldwise.snooping import (
    haircut_sharpe_ratio,
    min_backtest_length,
    reality_check,
    spa_test,
    stepm,
)
from foldwise.space import Categorical, Fixed, Float, Int, SearchSpace
from foldwise.splits import CombinatorialPurgedKFold, Fold, FoldStore, PurgedKFold, WalkForward
from foldwise.storage import repair_journal
from foldwise.strategy import Strategy, as_strategy, check_causal, strategy

__all__ = [
    "BacktestArrays",
    "BacktestCache",
    "BacktestResult",
    "BacktestSettings",
    "Categorical",
    "CombinatorialPurgedKFold",
    "Costs",
    "Criteria",
    "CustomFactor",
    "EquityPricing",
    "FactorStrategy",
    "Fixed",
    "Float",
    "Fold",
    "FoldStore",
    "FoldwiseError",
    "Int",
    "MarketData",
    "Pipeline",
    "Plateau",
    "PurgedKFold",
    "SearchSpace",
    "Strategy",
    "TopKMean",
    "WalkForward",
    "WalkForwardResult",
    "__version__",
    "aggregate",
    "as_strategy",
    "backtest",
    "cached_backtest",
    "check_causal",
    "datasets",
    "delete_study",
    "examples",
    "haircut_sharpe_ratio",
    "list_studies",
    "load_result",
    "metrics",
    "min_backtest_length",
    "optimize",
    "pipeline",
    "reality_check",
    "records",
    "repair_journal",
    "run_pipeline",
    "snooping",
    "spa_test",
    "space",
    "splits",
    "stats",
    "stepm",
    "strategy",
    "walk_forward_matrix",
]
