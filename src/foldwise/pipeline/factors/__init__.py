"""Built-in factors, importable as in Zipline (``from ... .factors import Returns``).

=====================================  ================================================
factor                                 definition (window of ``window_length`` bars)
=====================================  ================================================
Returns, DailyReturns, PercentChange   ``(last - first) / first`` (``abs(first)``)
SimpleMovingAverage                    mean, NaN skipped
ExponentialWeightedMovingAverage       weights ``decay_rate**k``, newest k = 0 (``EWMA``)
ExponentialWeightedMovingStdDev        weighted std with bias correction (``EWMSTD``)
LinearWeightedMovingAverage            weights ``1 .. window_length``, newest heaviest
AnnualizedVolatility                   std of daily returns x ``sqrt(252)``
RSI                                    relative strength index (15 bars)
BollingerBands                         mean +/- ``k`` std (outputs lower, middle, upper)
VWAP                                   ``sum(close * volume) / sum(volume)``
AverageDollarVolume                    ``sum(close * volume) / window_length``
MaxDrawdown                            ``(peak - trough) / trough`` at the largest drop
RollingPearsonOfReturns                correlation of returns with a target asset
RollingLinearRegressionOfReturns       regression of returns on a target asset
=====================================  ================================================

Every one is a :class:`~foldwise.pipeline.CustomFactor` computed by a whole-array kernel
(running sums in blocks, see :mod:`foldwise.pipeline._kernels`), checked against pandas in
the test suite.
"""

from foldwise.pipeline._custom import CustomFactor, Latest
from foldwise.pipeline._factor import Factor, Rank
from foldwise.pipeline.factors.basic import (
    EWMA,
    EWMSTD,
    VWAP,
    AnnualizedVolatility,
    AverageDollarVolume,
    DailyReturns,
    ExponentialWeightedMovingAverage,
    ExponentialWeightedMovingStdDev,
    LinearWeightedMovingAverage,
    MaxDrawdown,
    PercentChange,
    Returns,
    SimpleMovingAverage,
)
from foldwise.pipeline.factors.statistical import (
    RollingLinearRegression,
    RollingLinearRegressionOfReturns,
    RollingPearson,
    RollingPearsonOfReturns,
)
from foldwise.pipeline.factors.technical import RSI, BollingerBands

__all__ = [
    "EWMA",
    "EWMSTD",
    "RSI",
    "VWAP",
    "AnnualizedVolatility",
    "AverageDollarVolume",
    "BollingerBands",
    "CustomFactor",
    "DailyReturns",
    "ExponentialWeightedMovingAverage",
    "ExponentialWeightedMovingStdDev",
    "Factor",
    "Latest",
    "LinearWeightedMovingAverage",
    "MaxDrawdown",
    "PercentChange",
    "Rank",
    "Returns",
    "RollingLinearRegression",
    "RollingLinearRegressionOfReturns",
    "RollingPearson",
    "RollingPearsonOfReturns",
    "SimpleMovingAverage",
]
