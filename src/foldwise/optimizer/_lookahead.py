"""The lookahead check ``optimize`` runs once per study before the first fold.

A causal strategy is backtested once over the full history and every fold is a slice of
that run — which is only honest if its weight dated ``t`` uses data through ``t``. So
before the first trial, :func:`check_lookahead` takes the first feasible parameter set the
study's seed gives, reads (or runs) its full-history backtest through the cache — the run
the first trial needs anyway — and runs :func:`foldwise.check_causal` at a few cut-offs: a
handful of backtests on scrambled futures, run once per study (the manifest records it),
spread over the study's worker processes when it has several (the workers would wait
for the check anyway).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import optuna

from foldwise.errors import LookaheadError, StrategyParameterError, raised_by_strategy
from foldwise.strategy import check_causal

if TYPE_CHECKING:
    from ._plan import Request

__all__ = ["CUTOFFS", "check_lookahead"]

logger = logging.getLogger(__name__)

#: Dates at which the future is scrambled: one backtest each.
CUTOFFS = 3
_TRIES = 100


def _first_feasible(request: Request) -> dict[str, Any] | None:
    """The first parameter set of the space that the constraints accept (seeded)."""
    sampler = optuna.samplers.RandomSampler(seed=request.seed or 0)
    probe = optuna.create_study(sampler=sampler, direction=request.direction)
    for _ in range(_TRIES):
        params = request.space.suggest(probe.ask())
        if request.space.infeasible(params) is None:
            return params
    return None


def check_lookahead(request: Request) -> bool:
    """Check that ``request``'s strategy does not look ahead; True when it was checked.

    Raises
    ------
    LookaheadError
        Naming the first date and asset whose weight depends on later data, and the fix.
    """
    params = _first_feasible(request)
    if params is None:
        logger.warning("no feasible parameter set in %d tries: the lookahead check of %r "
                       "is skipped", _TRIES, request.strategy.name)
        return False
    try:
        baseline = request.cache.get_or_run(request.strategy, params, request.data,
                                            settings=request.settings)
    except StrategyParameterError:
        raise
    except Exception as exc:
        if not raised_by_strategy(exc):
            raise  # a fault of the cache, the storage or the machine (disk, permissions)
        _skipped(request, params, exc)  # the strategy's own failure: its trials report it
        return False
    try:
        check_causal(request.strategy, request.data, params, cutoffs=CUTOFFS,
                     seed=request.seed or 0, settings=request.settings, baseline=baseline,
                     n_jobs=request.workers)
    except LookaheadError:
        raise
    except Exception as exc:  # the strategy failed on the scrambled futures
        _skipped(request, params, exc)
        return False
    return True


def _skipped(request: Request, params: dict[str, Any], exc: Exception) -> None:
    logger.warning("the lookahead check of %r could not run the strategy with %s (%s: %s); "
                   "the check is skipped and the trials will report the failure",
                   request.strategy.name, params, type(exc).__name__, exc)
