"""Minimum backtest length (Bailey, Borwein, López de Prado & Zhu 2014, "Pseudo-Mathematics
and Financial Charlatanism: The Effects of Backtest Overfitting on Out-of-Sample
Performance", Notices of the AMS 61(5)).

Among ``N`` independent strategies without skill (true Sharpe ratio 0, normal i.i.d.
returns), the best annualized Sharpe ratio measured over ``y`` years is expected to be
``E[max_N] / sqrt(y)`` with ``E[max_N] ~= (1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e))``
(``g`` the Euler-Mascheroni constant, ``Z^-1`` the standard normal quantile). The minimum
backtest length is the ``y`` at which that expected best equals a given Sharpe ratio: a
shorter backtest of ``N`` trials is expected to show that Sharpe ratio by luck alone::

    MinBTL = (E[max_N] / SR)^2  <  2 ln(N) / SR^2

(the paper's equation 6 and its bound, since ``E[max_N] <= sqrt(2 ln N)``).
"""

from __future__ import annotations

import math

from foldwise.stats import expected_max_sharpe

from ._errors import SnoopingError

__all__ = ["min_backtest_length"]


def min_backtest_length(n_trials: float, sharpe: float = 1.0, *, bound: bool = False) -> float:
    """Years of backtest below which ``n_trials`` skill-less trials are expected to show
    an annualized Sharpe ratio of ``sharpe`` for their best.

    Parameters
    ----------
    n_trials
        ``N``, the number of independent configurations tried (the distinct parameter
        sets of a study; correlated sets count for less, so this is an upper bound).
    sharpe
        The annualized in-sample Sharpe ratio of the selected strategy (> 0). With a
        Sharpe ratio per other period (monthly, per day), the result is in those periods'
        units of time (months, days) instead of years.
    bound
        ``False`` (default): the paper's equation ``(E[max_N] / SR)^2``; ``True``: its
        upper bound ``2 ln(N) / SR^2``.

    Returns
    -------
    float
        Years; 0 for a single trial (nothing was selected).

    Examples
    --------
    The paper's example: with 5 years of data, no more than 45 independent configurations
    should be tried to target a Sharpe ratio of 1 (their expected best is 1):

    >>> round(min_backtest_length(45, 1.0), 2)
    5.0
    >>> round(min_backtest_length(45, 1.0, bound=True), 2)
    7.61
    """
    if not math.isfinite(float(n_trials)) or n_trials < 1:
        raise SnoopingError(f"n_trials must be a finite number >= 1, got {n_trials!r}.")
    if not math.isfinite(float(sharpe)) or sharpe <= 0:
        raise SnoopingError(
            f"sharpe must be a finite number > 0, got {sharpe!r}: any backtest length "
            "shows a Sharpe ratio at or below 0 by luck.")
    if bound:
        return 2.0 * math.log(n_trials) / sharpe ** 2
    return (expected_max_sharpe(n_trials, 1.0) / sharpe) ** 2
