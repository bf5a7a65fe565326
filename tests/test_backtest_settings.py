"""BacktestSettings: one frozen object for everything besides weights and data that changes
a backtest, accepted by backtest, Strategy.run, the cache and optimize."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import foldwise
from foldwise import BacktestCache, BacktestSettings, Costs, backtest
from foldwise.errors import BacktestError
from foldwise.examples import sma_crossover


@pytest.fixture(scope="module")
def data():
    return foldwise.datasets.load_goog().islice(0, 400)


def test_settings_and_keywords_give_the_same_backtest(data):
    weights = sma_crossover(data, fast=5, slow=20)
    settings = BacktestSettings(costs=Costs(1, 2), delay=1)
    by_object = backtest(weights, data, settings)
    by_keywords = backtest(weights, data, costs={"commission_bps": 1, "slippage_bps": 2}, delay=1)
    np.testing.assert_array_equal(by_object.returns, by_keywords.returns)
    assert by_object.settings == by_keywords.settings == settings
    replaced = backtest(weights, data, settings, delay=0)
    assert replaced.settings == settings.replace(delay=0)
    # an independent formula: yesterday's weight times today's return, less costs on trades
    close = data.frame("close")["GOOG"]
    held = weights["GOOG"].shift(1).fillna(0.0)
    expected = held.shift(1).fillna(0.0) * close.pct_change().fillna(0.0) \
        - 3e-4 * held.diff().fillna(held).abs()
    np.testing.assert_allclose(by_object.returns.to_numpy(), expected.to_numpy(), atol=1e-15)


def test_strategy_run_and_the_cache_take_the_settings_object(data, tmp_path):
    settings = BacktestSettings(costs=3, periods_per_year=52)
    run = sma_crossover.run(data, {"fast": 5, "slow": 20}, settings)
    cache = BacktestCache(tmp_path)
    cached = cache.get_or_run(sma_crossover, {"fast": 5, "slow": 20}, data, settings=settings)
    assert cached.metrics() == run.metrics()
    assert cached.settings == settings
    assert cache.key(sma_crossover, {"fast": 5, "slow": 20}, data, settings=settings) == \
        cache.key(sma_crossover, {"fast": 5, "slow": 20}, data, costs=3, periods_per_year=52.0)
    assert cache.key(sma_crossover, {"fast": 5, "slow": 20}, data, settings=settings) != \
        cache.key(sma_crossover, {"fast": 5, "slow": 20}, data, settings=settings.replace(delay=1))


def test_settings_round_trip_through_their_canonical_dict():
    settings = BacktestSettings(costs=Costs(0.5, 1), delay=2, price_field="open",
                                missing="raise", periods_per_year=365)
    assert BacktestSettings.from_dict(settings.to_dict()) == settings
    assert BacktestSettings.coerce(settings.to_dict()) == settings
    assert BacktestSettings(costs=Costs(0, -0.0)).to_dict() == BacktestSettings().to_dict()


@pytest.mark.parametrize(("fields", "words"), [
    ({"delay": -1}, "delay must be an integer >= 0"),
    ({"delay": 1.5}, "delay must be an integer >= 0"),
    ({"missing": "drop"}, "missing must be 'zero' or 'raise'"),
    ({"periods_per_year": 0}, "periods_per_year must be a finite number > 0"),
    ({"periods_per_year": float("inf")}, "periods_per_year must be a finite number > 0"),
    ({"price_field": ""}, "price_field must be the name of a data field"),
    ({"costs": "cheap"}, "costs must be"),
])
def test_bad_settings_name_the_fix(fields, words):
    with pytest.raises(BacktestError, match=words):
        BacktestSettings(**fields)


def test_unknown_settings_are_refused():
    with pytest.raises(BacktestError, match="unknown backtest setting"):
        BacktestSettings.from_dict({"costs": {}, "slipage": 1})
    with pytest.raises(BacktestError, match="settings must be a BacktestSettings"):
        BacktestSettings.coerce(3)  # type: ignore[arg-type]


def test_a_result_built_from_returns_keeps_its_settings():
    returns = pd.Series([0.01, -0.02, 0.0], index=pd.date_range("2024-01-01", periods=3))
    result = foldwise.BacktestResult.from_returns(returns, periods_per_year=12)
    assert result.periods_per_year == 12.0 == result.settings.periods_per_year
    again = foldwise.BacktestResult.from_arrays(result.index, result.assets, result.arrays,
                                                result.settings)
    assert again.metrics() == result.metrics()
