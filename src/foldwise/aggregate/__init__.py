"""Aggregation of an optimization's results: what survived out of sample.

Everything is read from the study storage and the cache; nothing runs a backtest. The
tables are surfaced on :class:`foldwise.WalkForwardResult`:

==============================  ============================================================
``result.folds``                one row per fold: windows, chosen parameters, in- and
                                out-of-sample metrics, walk-forward efficiency, DSR of the
                                choice, trials completed / failed / pruned, cache hits
``result.ranking``              parameter sets judged out of sample, ranked across folds
``result.oos_returns``,         the stitched out-of-sample curve (re-optimization costs
``result.oos_equity``           included) and its metrics
``result.comparison``           the curve next to the chosen sets in sample and an
                                equal-weight holding of the universe
``result.parameter_stability``  dispersion of the chosen parameters across folds
``result.rank_correlation``     per fold, in- vs out-of-sample rank correlation
``result.summary()``            the pass/fail criteria (:class:`Criteria`)
``result.overfitting()``        PBO (CSCV), PSR and DSR of the out-of-sample curve
``result.cpcv_paths()``         CPCV: the distribution of path Sharpe ratios
``result.text_report()``        all of it as text (what ``foldwise show`` prints)
==============================  ============================================================

:func:`walk_forward_matrix` runs the optimization over a grid of window lengths.
"""

from __future__ import annotations

from ._analysis import Analysis
from ._criteria import Criteria
from ._matrix import walk_forward_matrix
from ._stitch import stitch
from ._text import text_report

__all__ = ["Analysis", "Criteria", "stitch", "text_report", "walk_forward_matrix"]
