"""From a factor to target weights: legs, weighting, exposures and the rebalance schedule.

Everything is whole-array over ``(n_dates, n_assets)``: each date's eligible assets (passing
the screen, with a score) are sorted once, the legs picked, weighted and scaled.

* **Legs.** ``top_bottom``: long the ``n_long`` highest scores, short the ``n_short`` lowest
  (a date with fewer eligible assets than ``n_long + n_short`` is flat; among tied scores
  the long leg prefers the asset listed first, the short leg the one listed last, so the
  legs never overlap). ``quantile``: long the top of ``quantiles`` bins, short the bottom
  (bins as ``Factor.quantiles``). ``factor``: long every asset above the date's mean score,
  short every one below. ``long_only``: long the ``n_long`` highest (all eligible assets
  when ``n_long`` is None).
* **Weighting.** ``equal`` splits a leg's exposure equally; ``factor`` in proportion to
  the distance of the score from the date's mean (an asset on the wrong side of the mean
  gets 0; a leg whose distances are all 0 falls back to equal weights). The ``factor``
  method is always factor-weighted.
* **Exposure.** The long leg holds ``(gross + net) / 2`` and the short leg
  ``(gross - net) / 2`` (``long_only``: the long leg holds ``gross``). A leg with no asset
  holds nothing, so its exposure is not moved to the other leg.
* **Schedule.** Weights are set on rebalance dates and held until the next one: every
  ``N`` bars counted from the first bar of the data, or on the first bar of each calendar
  period (``"W"``, ``"M"``, ``"Q"``, ``"Y"``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from foldwise.errors import StrategyParameterError
from foldwise.pipeline._crosssection import quantile_labels

__all__ = ["CONSTRUCTION_DEFAULTS", "check_construction", "check_rebalance", "hold_between",
           "rebalance_dates", "target_weights"]

METHODS = ("top_bottom", "quantile", "factor", "long_only")
WEIGHTINGS = ("equal", "factor")
_PERIODS = {"D": "D", "W": "W", "M": "M", "ME": "M", "MS": "M", "Q": "Q", "QE": "Q", "QS": "Q",
            "Y": "Y", "YE": "Y", "YS": "Y", "A": "Y"}

#: The portfolio-construction parameters of a factor strategy and their defaults.
CONSTRUCTION_DEFAULTS: dict[str, Any] = {
    "method": "top_bottom", "n_long": 5, "n_short": 5, "quantiles": 5, "weighting": "equal",
    "gross": 1.0, "net": 0.0, "rebalance": 1,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_construction(params: dict[str, Any]) -> dict[str, Any]:
    """Validate portfolio-construction parameters; raise StrategyParameterError naming one."""
    method, weighting = params["method"], params["weighting"]
    if method not in METHODS:
        raise StrategyParameterError(f"method must be one of {METHODS}, got {method!r}.")
    if weighting not in WEIGHTINGS:
        raise StrategyParameterError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
    n_long, n_short = params["n_long"], params["n_short"]
    if method == "top_bottom" and (
            not (_is_int(n_long) and _is_int(n_short)) or n_long < 0 or n_short < 0
            or n_long + n_short == 0):
        raise StrategyParameterError(
                f"top_bottom needs integers n_long >= 0 and n_short >= 0, not both 0; got "
                f"n_long={n_long!r}, n_short={n_short!r}.")
    if method == "long_only" and n_long is not None and not (_is_int(n_long) and n_long >= 1):
        raise StrategyParameterError(
            f"long_only needs n_long >= 1 (or None for every eligible asset), got {n_long!r}.")
    if method == "quantile" and not (_is_int(params["quantiles"]) and params["quantiles"] >= 2):
        raise StrategyParameterError(
            f"quantile needs quantiles >= 2 bins, got {params['quantiles']!r}.")
    gross, net = params["gross"], params["net"]
    numbers = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                  and math.isfinite(v) for v in (gross, net))
    if not numbers or gross <= 0 or abs(net) > gross:
        raise StrategyParameterError(
            f"gross must be > 0 and net within [-gross, gross]; got gross={gross!r}, "
            f"net={net!r}.")
    check_rebalance(params["rebalance"])
    return params


def check_rebalance(rule: Any) -> int | str:
    """A rebalance rule: a number of bars >= 1, or a calendar period ("W", "M", "Q", "Y")."""
    if (_is_int(rule) and rule >= 1) or (isinstance(rule, str) and rule.upper() in _PERIODS):
        return rule
    raise StrategyParameterError(
        f"rebalance must be a number of bars >= 1 or a calendar rule (D, W, M, Q, Y); got "
        f"{rule!r}.")


def _legs(score: np.ndarray, eligible: np.ndarray, params: dict[str, Any],
          mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    method = params["method"]
    count = eligible.sum(axis=1, keepdims=True)
    if method in ("top_bottom", "long_only"):
        order = np.argsort(np.where(eligible, -score, np.nan), axis=1, kind="stable")
        position = np.empty(score.shape, dtype=np.int64)
        np.put_along_axis(position, order, np.arange(score.shape[1])[None, :], axis=1)
        n_long = params["n_long"]
        if method == "long_only":
            longs = eligible if n_long is None else eligible & (position < n_long)
            return longs, np.zeros_like(eligible)
        n_short = params["n_short"]
        enough = count >= n_long + n_short
        longs = eligible & (position < n_long) & enough
        shorts = eligible & (position >= count - n_short) & enough
        return longs, shorts
    if method == "quantile":
        labels = quantile_labels(score, eligible, params["quantiles"])
        return labels == params["quantiles"] - 1, (labels == 0) & eligible
    with np.errstate(invalid="ignore"):
        return eligible & (score > mean), eligible & (score < mean)


def _scaled(leg: np.ndarray, magnitude: np.ndarray, exposure: float) -> np.ndarray:
    magnitude = np.where(leg, magnitude, 0.0)
    total = magnitude.sum(axis=1, keepdims=True)
    members = leg.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = np.where(total > 0, magnitude / total, leg / members)
    return np.where(members > 0, exposure * weighted, 0.0)


def target_weights(score: np.ndarray, eligible: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Weights ``(n_dates, n_assets)`` of the portfolio the parameters describe.

    Examples
    --------
    >>> score = np.array([[3.0, 1.0, 2.0, np.nan]])
    >>> params = dict(CONSTRUCTION_DEFAULTS, n_long=1, n_short=1)
    >>> target_weights(score, np.ones_like(score, dtype=bool), params)
    array([[ 0.5, -0.5,  0. ,  0. ]])
    """
    eligible = eligible & ~np.isnan(score)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (np.where(eligible, score, 0.0).sum(axis=1, keepdims=True)
                / eligible.sum(axis=1, keepdims=True))
    longs, shorts = _legs(score, eligible, params, mean)
    if params["weighting"] == "factor" or params["method"] == "factor":
        long_size = np.clip(score - mean, 0.0, None)
        short_size = np.clip(mean - score, 0.0, None)
    else:
        long_size = short_size = np.ones(score.shape)
    gross, net = float(params["gross"]), float(params["net"])
    if params["method"] == "long_only":
        return _scaled(longs, long_size, gross)
    return (_scaled(longs, long_size, (gross + net) / 2)
            - _scaled(shorts, short_size, (gross - net) / 2))


def rebalance_dates(index: pd.DatetimeIndex, rule: int | str) -> np.ndarray:
    """Boolean per date: True where the portfolio is rebalanced.

    Examples
    --------
    >>> days = pd.bdate_range("2024-01-29", periods=5)
    >>> rebalance_dates(days, 2).tolist(), rebalance_dates(days, "M").tolist()
    ([True, False, True, False, True], [True, False, False, True, False])
    """
    if isinstance(rule, str):
        periods = index.tz_localize(None).to_period(_PERIODS[rule.upper()])
        flags = np.ones(len(index), dtype=bool)
        flags[1:] = periods[1:] != periods[:-1]
        return flags
    return np.arange(len(index)) % int(rule) == 0


def hold_between(weights: np.ndarray, rebalance: np.ndarray) -> np.ndarray:
    """Each date's weights are those of the latest rebalance date at or before it."""
    last = np.maximum.accumulate(np.where(rebalance, np.arange(len(rebalance)), -1))
    held = weights[np.maximum(last, 0)]
    held[last < 0] = 0.0
    return held
