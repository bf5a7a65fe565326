"""The Pipeline API: Zipline-compatible factors, computed once, vectorized.

A factor is a formula; :func:`run_pipeline` evaluates a :class:`Pipeline` of them over a
date range of a :class:`~foldwise.MarketData` and returns a DataFrame indexed by
``(date, asset)``. Code written for Zipline's pipeline runs unchanged apart from its
imports: ``zipline.pipeline`` becomes ``foldwise.pipeline`` (and ``.data``, ``.factors``,
``.filters``, ``.classifiers`` likewise).

Lookahead: the row dated ``D`` is computed from data through the bar *before* ``D``.

Where foldwise differs from Zipline:

* The universe is the MarketData's assets on every date (there are no asset lifetimes nor
  ``AssetExists``); missing data is NaN, so screen with e.g. ``close.latest.notnan()``.
  There are no domains, calendars, loaders or price adjustments: data is used as given.
* ``assets`` passed to ``compute`` are the data's labels (strings), and ``factor["AAPL"]``
  takes a label. Factors are ``float64`` and classifiers ``int64`` (no string labels).
* Quantiles with repeated edges do not raise (``pandas.qcut`` would); a grouped rank gives
  NaN values a NaN rank, like the ungrouped one; a regression on a constant target is NaN
  (``scipy.stats.linregress`` raises).
* ``Returns(20)`` is accepted for ``Returns(window_length=20)``; the output index levels
  are named ``date`` and ``asset``.
* Not provided: ``downsample``, ``alias``, ``if_else``, ``spearmanr``, daily summaries
  (``factor.mean()``...), ``peer_count``, and the technical indicators beyond RSI and
  Bollinger bands.

>>> import numpy as np
>>> from foldwise.datasets import load_sp500
>>> from foldwise.pipeline import CustomFactor, EquityPricing, Pipeline, run_pipeline
>>> from foldwise.pipeline.factors import Returns
>>> class Reversion(CustomFactor):
...     inputs = [EquityPricing.close]
...     window_length = 60
...     def compute(self, today, assets, out, prices):
...         out[:] = -prices[-1] / np.mean(prices, axis=0)
>>> reversion = Reversion()
>>> pipe = Pipeline({"reversion": reversion, "momentum": Returns(window_length=20)},
...                 screen=reversion.top(5))
>>> out = run_pipeline(pipe, load_sp500(), "2022-01-03", "2022-12-28")
>>> out.groupby(level="date").size().unique().tolist()
[5]
"""

from foldwise.pipeline._algorithm import (
    AlgorithmStrategy,
    attach_pipeline,
    get_datetime,
    pipeline_output,
)
from foldwise.pipeline._classifier import Classifier
from foldwise.pipeline._custom import CustomClassifier, CustomFactor, CustomFilter
from foldwise.pipeline._dataset import BoundColumn, Column, DataSet, EquityPricing
from foldwise.pipeline._engine import TermCache, run_pipeline, term_cache
from foldwise.pipeline._factor import Factor
from foldwise.pipeline._filter import Filter
from foldwise.pipeline._pipeline import Pipeline
from foldwise.pipeline._strategy import FactorStrategy
from foldwise.pipeline._term import Term

__all__ = [
    "AlgorithmStrategy",
    "BoundColumn",
    "Classifier",
    "Column",
    "CustomClassifier",
    "CustomFactor",
    "CustomFilter",
    "DataSet",
    "EquityPricing",
    "Factor",
    "FactorStrategy",
    "Filter",
    "Pipeline",
    "Term",
    "TermCache",
    "attach_pipeline",
    "get_datetime",
    "pipeline_output",
    "run_pipeline",
    "term_cache",
]
