"""Aggregation of an optimization's results: what survived out of sample.

Pure functions on the typed study records (:mod:`foldwise.records`) and on runs read
through a :class:`RunLoader`; nothing here runs a backtest or opens a study storage, and
nothing imports the optimizer. The tables are surfaced on :class:`WalkForwardResult`:

==============================  ============================================================
``result.folds``                one row per fold: windows, the parameters the study's
                                selection rule chose (``select=``, :mod:`._rules`), in- and
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
``result.snooping()``           data snooping: SPA and StepM per window (full history,
                                each fold in sample, out of sample), haircut Sharpe
                                ratio and minimum backtest length
``result.cpcv_paths()``         CPCV: the distribution of path Sharpe ratios
``result.text_report()``        all of it as text (what ``foldwise show`` prints)
``result.report(path)``         all of it as one self-contained HTML file (plotly figures,
                                a jinja2 template; ``foldwise report`` writes it)
==============================  ============================================================
"""

from __future__ import annotations

from ._average import average_params
from ._criteria import Criteria
from ._folds import FoldRecord
from ._plateau import PlateauScore, plateau_scores
from ._result import WalkForwardResult
from ._rules import RULES, Best, Plateau, SelectRule, TopKMean, as_rule, rule_from_json
from ._runs import CacheRunLoader, RunLoader
from ._select import FoldChoice, SelectedSet, choose, select_top
from ._snooping import SnoopingReport
from ._stitch import stitch
from ._text import text_report

__all__ = ["RULES", "Best", "CacheRunLoader", "Criteria", "FoldChoice", "FoldRecord", "Plateau",
           "PlateauScore", "RunLoader", "SelectRule", "SelectedSet", "SnoopingReport", "TopKMean",
           "WalkForwardResult", "as_rule", "average_params", "choose", "plateau_scores",
           "rule_from_json", "select_top", "stitch", "text_report"]
