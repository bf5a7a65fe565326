"""Strategies from pipelines: portfolio construction by hand, FactorStrategy, algorithm style."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import foldwise
from foldwise import MarketData, check_causal
from foldwise.errors import (
    PipelineError,
    StrategyError,
    StrategyOutputError,
    StrategyParameterError,
)
from foldwise.pipeline import (
    AlgorithmStrategy,
    CustomFactor,
    EquityPricing,
    FactorStrategy,
    Pipeline,
    TermCache,
    attach_pipeline,
    get_datetime,
    pipeline_output,
    run_pipeline,
)
from foldwise.pipeline import _algorithm as algorithm
from foldwise.pipeline._portfolio import (
    CONSTRUCTION_DEFAULTS,
    check_construction,
    hold_between,
    rebalance_dates,
    target_weights,
)
from foldwise.pipeline.factors import Returns


def weights(scores, eligible=None, **params):
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    eligible = np.ones(scores.shape, dtype=bool) if eligible is None else np.atleast_2d(eligible)
    return target_weights(scores, eligible, dict(CONSTRUCTION_DEFAULTS, **params))


# --- portfolio construction by hand --------------------------------------------------------


def test_top_bottom_equal_weights_and_exposures():
    scores = [3.0, 1.0, 2.0, np.nan, 5.0]
    np.testing.assert_allclose(weights(scores, n_long=1, n_short=1), [[0, -0.5, 0, 0, 0.5]])
    np.testing.assert_allclose(weights(scores, n_long=2, n_short=1, gross=2.0, net=0.5),
                               [[0.625, -0.75, 0, 0, 0.625]])
    eligible = [True, True, True, True, False]  # the screen drops the best score
    np.testing.assert_allclose(weights(scores, eligible, n_long=1, n_short=1),
                               [[0.5, -0.5, 0, 0, 0]])


def test_top_bottom_is_flat_without_enough_assets_and_splits_ties():
    np.testing.assert_allclose(weights([3.0, np.nan, 1.0], n_long=2, n_short=1), [[0, 0, 0]])
    np.testing.assert_allclose(weights([1.0, 1.0, 1.0, 1.0], n_long=1, n_short=1),
                               [[0.5, 0, 0, -0.5]])
    np.testing.assert_allclose(weights([np.nan, np.nan]), [[0, 0]])
    np.testing.assert_allclose(weights([3.0, 1.0, 2.0], n_long=2, n_short=0),
                               [[0.25, 0, 0.25]])  # an empty leg keeps its exposure


def test_factor_weights_within_legs():
    scores = [3.0, 1.0, 2.0, 5.0]  # mean 2.75
    got = weights(scores, n_long=2, n_short=1, weighting="factor")
    np.testing.assert_allclose(got, [[0.5 * 0.25 / 2.5, -0.5, 0, 0.5 * 2.25 / 2.5]])
    # a long-leg asset below the mean gets nothing; an all-zero leg falls back to equal
    np.testing.assert_allclose(weights([1.0, 1.0, 1.0], n_long=1, n_short=1, weighting="factor"),
                               [[0.5, 0, -0.5]])


def test_quantile_and_factor_methods():
    scores = np.arange(10.0)
    np.testing.assert_allclose(weights(scores, method="quantile", quantiles=5),
                               [[-0.25, -0.25, 0, 0, 0, 0, 0, 0, 0.25, 0.25]])
    np.testing.assert_allclose(weights([1.0, 2.0, 3.0, 6.0], method="factor"),
                               [[-0.5 * 2 / 3, -0.5 / 3, 0, 0.5]])
    # the factor method is factor-weighted by definition, whatever `weighting` says
    np.testing.assert_allclose(weights([1.0, 2.0, 3.0, 6.0], method="factor", weighting="equal"),
                               [[-0.5 * 2 / 3, -0.5 / 3, 0, 0.5]])


def test_long_only():
    scores = [3.0, 1.0, 2.0, 6.0]
    np.testing.assert_allclose(weights(scores, method="long_only", n_long=None),
                               [[0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(weights(scores, method="long_only", n_long=2, gross=0.5),
                               [[0.25, 0, 0, 0.25]])
    np.testing.assert_allclose(weights([4.0, 1.0, 2.0, 7.0], method="long_only", n_long=2,
                                       weighting="factor"), [[0.5 / 4, 0, 0, 3.5 / 4]])


def test_rebalance_schedule_and_holding():
    days = pd.bdate_range("2024-01-25", periods=8)  # Thu .. Mon, across a month end
    assert rebalance_dates(days, 3).tolist() == [1, 0, 0, 1, 0, 0, 1, 0]
    assert rebalance_dates(days, "W").tolist() == [1, 0, 1, 0, 0, 0, 0, 1]
    assert rebalance_dates(days, "M").tolist() == [1, 0, 0, 0, 0, 1, 0, 0]
    raw = np.arange(8.0)[:, None]
    flags = np.array([0, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    np.testing.assert_array_equal(hold_between(raw, flags)[:, 0], [0, 1, 1, 1, 4, 4, 4, 4])


@pytest.mark.parametrize(("changes", "message"), [
    ({"method": "best"}, "method must be one of"),
    ({"n_long": 0, "n_short": 0}, "not both 0"),
    ({"n_long": -1}, "n_long >= 0"),
    ({"n_long": 2.5}, "integers n_long"),
    ({"method": "quantile", "quantiles": 1}, "quantiles >= 2"),
    ({"method": "long_only", "n_long": 0}, "long_only needs n_long >= 1"),
    ({"gross": 0.0}, "gross must be > 0"),
    ({"net": 1.5}, "net within"),
    ({"weighting": "rank"}, "weighting must be one of"),
    ({"rebalance": 0}, "rebalance must be"),
    ({"rebalance": "fortnight"}, "rebalance must be"),
])
def test_construction_errors(changes, message):
    with pytest.raises(StrategyParameterError, match=message):
        check_construction(dict(CONSTRUCTION_DEFAULTS, **changes))


# --- FactorStrategy ------------------------------------------------------------------------


def panel(n_dates: int = 40, n_assets: int = 4, seed: int = 1) -> MarketData:
    rng = np.random.default_rng(seed)
    closes = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, (n_dates, n_assets)), axis=0))
    return MarketData({"close": closes}, pd.bdate_range("2023-01-02", periods=n_dates),
                      [f"S{i}" for i in range(n_assets)])


def test_factor_strategy_weights_by_hand():
    data = panel()
    strategy = FactorStrategy(Returns(window_length=3), n_long=1, n_short=1, rebalance=2)
    got = strategy(data)
    close = data.array("close")
    expected = np.zeros(data.shape)
    for row in range(data.n_dates):
        if row < 3:
            continue  # the first date with two returns' worth of history is the 4th
        score = (close[row - 1] - close[row - 3]) / close[row - 3]  # through the bar before
        expected[row, np.argmax(score)] = 0.5
        expected[row, np.argmin(score)] = -0.5
    expected = hold_between(expected, np.arange(data.n_dates) % 2 == 0)
    np.testing.assert_allclose(got.to_numpy(), expected)
    assert got.index.equals(data.index)
    assert list(got.columns) == list(data.assets)
    result = strategy.run(data)
    np.testing.assert_allclose(result.positions.to_numpy(), expected)


def test_pipeline_output_dated_d_is_the_weight_dated_d():
    data = panel()
    score = Returns(window_length=5).zscore()
    pipe = Pipeline({"score": score}, screen=score.notnan())
    frame = run_pipeline(pipe, data)
    weights_ = FactorStrategy(pipe, n_long=1, n_short=1)(data)
    top = frame["score"].groupby(level="date").idxmax().map(lambda pair: pair[1])
    for date, asset in top.items():
        assert weights_.loc[date, asset] == pytest.approx(0.5)


def test_factor_strategy_parameters_and_validation():
    def make(window=20, smooth=3):
        return Returns(window_length=window).zscore()

    strategy = FactorStrategy(make, n_long=2, n_short=2, rebalance="W")
    params = strategy.parameters
    assert params["window"] == 20
    assert params["smooth"] == 3
    assert params["n_long"] == 2
    assert params["rebalance"] == "W"
    assert strategy.causal is True
    assert isinstance(strategy, foldwise.Strategy)
    with pytest.raises(StrategyParameterError, match="Did you mean 'window'"):
        strategy.validate_params({"widow": 5})
    with pytest.raises(StrategyError, match="clash"):
        FactorStrategy(lambda n_long=3: Returns(window_length=n_long))
    multi = Pipeline({"a": Returns(window_length=2), "b": Returns(window_length=3)})
    with pytest.raises(StrategyParameterError, match="say which holds the score"):
        FactorStrategy(multi)(panel())
    with pytest.raises(StrategyParameterError, match="must be a factor"):
        FactorStrategy(Pipeline({"up": Returns(window_length=2) > 0}))(panel())
    with pytest.raises(StrategyParameterError, match="net within"):
        FactorStrategy(make)(panel(), net=2.0)


def test_short_data_raises_the_window_error():
    with pytest.raises(foldwise.errors.WindowLengthError, match="Returns"):
        FactorStrategy(Returns(window_length=60))(panel())


class Untuned(CustomFactor):
    inputs = [EquityPricing.close]
    window_length = 5
    calls: list = []

    def compute(self, today, assets, out, closes):
        Untuned.calls.append(today)
        out[:] = closes[-1] / closes.mean(axis=0)


def test_terms_a_tuned_parameter_does_not_touch_are_computed_once():
    data = panel(n_dates=120)

    def make(window=10):
        return Returns(window_length=window).zscore() + Untuned().zscore()

    strategy = FactorStrategy(make, n_long=1, n_short=1, cache=TermCache())
    Untuned.calls.clear()
    first = strategy(data, window=10)
    computed = len(Untuned.calls)
    assert computed == data.n_dates - 5
    second = strategy(data, window=30)
    strategy(data, window=10)
    assert len(Untuned.calls) == computed
    assert not first.equals(second)
    Untuned.calls.clear()
    uncached = FactorStrategy(make, n_long=1, n_short=1, cache=None)
    uncached(data, window=10)
    uncached(data, window=30)
    assert len(Untuned.calls) == 2 * computed


def test_factor_strategy_is_causal_and_fingerprinted():
    data = panel(n_dates=80)

    def make(window=10):
        return Returns(window_length=window).rank()

    def other(window=10):
        return -Returns(window_length=window).rank()

    strategy = FactorStrategy(make, n_long=1, n_short=1, rebalance="W")
    check_causal(strategy, data, {"window": 15})
    same = FactorStrategy(make, n_long=1, n_short=1, rebalance="W")
    assert strategy.fingerprint == same.fingerprint
    assert FactorStrategy(make, n_long=2, n_short=1).fingerprint != strategy.fingerprint
    assert FactorStrategy(other, n_long=1, n_short=1, rebalance="W").fingerprint != \
        strategy.fingerprint
    fixed = FactorStrategy(Returns(window_length=5), n_long=1, n_short=1)
    assert fixed.fingerprint != FactorStrategy(Returns(window_length=6), n_long=1,
                                               n_short=1).fingerprint


# --- algorithm style -------------------------------------------------------------------------


def _initialize(context, window=5, n=1):
    attach_pipeline(Pipeline({"score": Returns(window_length=window)}), "momentum")
    attach_pipeline(Returns(window_length=2).rank(), "daily")
    context.n = n


def _rebalance(context, data):
    scores = pipeline_output("momentum")["score"]
    assert get_datetime() == data.index[-1]
    if scores.empty:
        return {}
    return {scores.idxmax(): 0.5, scores.idxmin(): -0.5}


def test_attached_pipelines_are_computed_in_one_batch(monkeypatch):
    data = panel(n_dates=60)
    calls = []
    original = algorithm.compute_wide

    def counting(pipeline, market, **kwargs):
        calls.append(pipeline)
        return original(pipeline, market, **kwargs)

    monkeypatch.setattr(algorithm, "compute_wide", counting)
    strategy = AlgorithmStrategy(_initialize, _rebalance, schedule=1)
    got = strategy(data, window=5)
    assert len(calls) == 2  # one per attached pipeline, not one per date
    expected = FactorStrategy(Returns(window_length=5), n_long=1, n_short=1)(data)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy())


def test_pipeline_output_is_the_row_of_the_current_date():
    data = panel(n_dates=50)
    seen = {}

    def initialize(context):
        attach_pipeline(Pipeline({"r": Returns(window_length=3)},
                                 screen=Returns(window_length=3).top(2)), "top")

    def rebalance(context, history):
        seen[history.index[-1]] = pipeline_output("top")

    AlgorithmStrategy(initialize, rebalance, schedule="W")(data)
    full = run_pipeline(Pipeline({"r": Returns(window_length=3)},
                                 screen=Returns(window_length=3).top(2)), data)
    for date, frame in seen.items():
        pd.testing.assert_frame_equal(frame, full.xs(date, level="date"), check_names=False)
    assert all(d.day_of_week == 0 or d == data.index[3] for d in seen)


def test_algorithm_holds_targets_and_checks_them():
    data = panel(n_dates=30)

    def initialize(context, keep=False):
        context.keep = keep

    def rebalance(context, history):
        if context.keep and len(history) > 1:
            return None
        return pd.Series({"S1": 0.3, "S2": -0.1})

    held = AlgorithmStrategy(initialize, rebalance, schedule=5)(data)
    np.testing.assert_allclose(held.to_numpy()[-1], [0, 0.3, -0.1, 0])
    kept = AlgorithmStrategy(initialize, rebalance)(data, keep=True)
    np.testing.assert_allclose(kept.to_numpy(), np.tile([0, 0.3, -0.1, 0], (30, 1)))
    assert AlgorithmStrategy(initialize, rebalance).parameters == {"keep": False}

    with pytest.raises(StrategyOutputError, match="return a Series or dict"):
        AlgorithmStrategy(initialize, lambda c, d: [0.1])(data)
    with pytest.raises(StrategyOutputError, match="'ZZZ', which is not an asset"):
        AlgorithmStrategy(initialize, lambda c, d: {"ZZZ": 1.0})(data)
    with pytest.raises(StrategyOutputError, match="finite numbers"):
        AlgorithmStrategy(initialize, lambda c, d: {"S1": np.nan})(data)


def test_algorithm_api_outside_a_run():
    with pytest.raises(PipelineError, match="inside initialize"):
        attach_pipeline(Returns(window_length=2), "x")
    with pytest.raises(PipelineError, match="inside the rebalance callback"):
        pipeline_output("x")

    def initialize(context):
        attach_pipeline(Returns(window_length=2), "x")

    with pytest.raises(PipelineError, match=r"no pipeline attached as 'y' \(attached: \['x'\]\)"):
        AlgorithmStrategy(initialize, lambda c, d: pipeline_output("y"))(panel())

    def twice(context):
        attach_pipeline(Returns(window_length=2), "x")
        attach_pipeline(Returns(window_length=3), "x")

    with pytest.raises(PipelineError, match="already attached"):
        AlgorithmStrategy(twice, lambda c, d: None)(panel())


def _module_level_factory(window=10):
    return Returns(window_length=window).zscore()


def test_strategies_pickle_for_worker_processes():
    import pickle

    from foldwise.pipeline import term_cache

    data = panel()
    strategy = FactorStrategy(_module_level_factory, n_long=1, n_short=1)
    copy = pickle.loads(pickle.dumps(strategy))
    assert copy.cache is term_cache  # the receiving process's own cache
    assert copy.fingerprint == strategy.fingerprint
    pd.testing.assert_frame_equal(copy(data, window=5), strategy(data, window=5))
    private = FactorStrategy(_module_level_factory, cache=TermCache(max_bytes=123))
    restored = pickle.loads(pickle.dumps(private)).cache
    assert restored is not term_cache
    assert restored.max_bytes == 123
    assert len(restored) == 0
