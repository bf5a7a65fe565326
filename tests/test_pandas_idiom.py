"""Strategy code written in pandas: ``data["close"]`` is a DataFrame over the read-only data.

A field reads as a new DataFrame (dates x assets) over the panel's own memory each time;
``data.array(field)`` is the array itself. Writing into either is refused by the memory,
and ``Strategy.run`` reports it as a ``DataWriteError`` naming the strategy and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

import foldwise
from foldwise import MarketData, Strategy
from foldwise.errors import DataWriteError, MissingFieldError, StrategyError, raised_by_strategy
from foldwise.examples import sma_crossover
from foldwise.space import Int
from foldwise.splits import WalkForward

from .conftest import make_panel


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def gappy_panel() -> MarketData:
    """Four assets, one of them without a price for a few bars (NaN)."""
    data = make_panel(120, 4)
    close = data.array("close").copy()
    close[30:34, 1] = np.nan
    return MarketData({"close": close}, data.index, data.assets)


@foldwise.strategy
def pandas_sma(data, fast=10, slow=50):
    """The SMA crossover of foldwise.examples, written the way a pandas user writes it."""
    close = data["close"]
    fast_ma = close.rolling(fast).mean()
    slow_ma = close.rolling(slow).mean()
    return (fast_ma > slow_ma).astype(float) / data.n_assets


# --- reading ---------------------------------------------------------------------------


def test_a_field_reads_as_a_frame_over_the_data_without_a_copy():
    data = gappy_panel()
    array = data.array("close")
    for frame in (data["close"], data.close, data.frame("close"), data.frame()):
        assert type(frame) is pd.DataFrame
        assert frame.index.equals(data.index) and frame.columns.equals(data.assets)
        assert frame.index is data.index and frame.columns is data.assets
        np.testing.assert_array_equal(frame.to_numpy(), array)  # NaN where NaN
        assert np.shares_memory(frame.to_numpy(), array)
        assert all(dtype == np.float64 for dtype in frame.dtypes)


def test_array_is_the_read_only_array_itself():
    data = gappy_panel()
    array = data.array("close")
    assert type(array) is np.ndarray and array.dtype == np.float64
    assert array.shape == data.shape and not array.flags.writeable
    assert data.array("close") is array and data.array() is array  # no copy, no new object
    with pytest.raises(MissingFieldError, match=r"no field 'volume'.*fields: \['close'\]"):
        data.array("volume")
    with pytest.raises(MissingFieldError, match="no field 'volume'"):
        data["volume"]


def test_each_read_is_a_new_frame_so_a_replaced_column_does_not_leak():
    data = gappy_panel()
    first = data["close"]
    assert data["close"] is not first and data.close is not first
    first["A0"] = 0.0                                  # pandas replaces the column
    first.columns = ["w", "x", "y", "z"]
    del first["x"]
    again = data["close"]
    assert list(again.columns) == list(data.assets)
    np.testing.assert_array_equal(again.to_numpy(), data.array("close"))
    assert (again["A0"] != 0.0).all()


def test_operations_that_return_a_new_frame_need_no_copy():
    data = gappy_panel()
    close = data["close"]
    filled = close.fillna(0.0)
    assert filled.iloc[30, 1] == 0.0 and np.isnan(data.array("close")[30, 1])
    shifted = close + 1
    np.testing.assert_array_equal(shifted.to_numpy(), data.array("close") + 1)
    copy = close.copy()
    copy.iloc[0, 0] = -1.0
    assert data.array("close")[0, 0] > 0


# --- pandas and numpy strategies agree ---------------------------------------------------


@pytest.mark.parametrize(("fast", "slow"), [(3, 10), (10, 50), (5, 100)])
def test_the_pandas_strategy_gives_the_numpy_strategys_weights_and_metrics(fast, slow):
    data = gappy_panel() if slow <= 50 else foldwise.datasets.load_sp500().islice(0, 600)
    ours = pandas_sma(data, fast=fast, slow=slow)
    reference = sma_crossover(data, fast=fast, slow=slow)
    pd.testing.assert_frame_equal(ours, reference)
    got = pandas_sma.run(data, {"fast": fast, "slow": slow}, costs=2).metrics()
    expected = sma_crossover.run(data, {"fast": fast, "slow": slow}, costs=2).metrics()
    assert got == pytest.approx(expected, rel=1e-12, nan_ok=True)


def test_a_pandas_strategy_runs_through_optimize_like_the_numpy_one(store_dir):
    data = foldwise.datasets.load_goog()
    common: dict[str, Any] = {"data": data, "space": {"fast": Int(5, 30), "slow": Int(20, 80, step=5)},
              "constraints": "fast < slow", "splitter": WalkForward(train=500, test=250),
              "n_trials": 6, "seed": 0, "sampler": "random", "costs": 2.0,
              "show_progress": False}
    ours = foldwise.optimize(pandas_sma, study="pandas", **common)
    reference = foldwise.optimize(sma_crossover, study="numpy", **common)
    columns = ["fold", "trial", "state"]
    pd.testing.assert_frame_equal(ours.trials[columns], reference.trials[columns])
    assert ours.trials["params"].tolist() == reference.trials["params"].tolist()
    np.testing.assert_allclose(ours.trials["value"], reference.trials["value"], rtol=1e-12)
    assert ours.best_params == reference.best_params
    for name in ("is_sharpe", "oos_sharpe"):
        np.testing.assert_allclose(ours.folds[name], reference.folds[name], rtol=1e-12)
    np.testing.assert_allclose(ours.oos_equity.to_numpy(), reference.oos_equity.to_numpy(),
                               rtol=1e-12)


# --- writing is a clear error --------------------------------------------------------------


def _iloc(data):
    close = data["close"]
    close.iloc[0, 0] = 1.0


def _iloc_rows(data):
    close = data["close"]
    close.iloc[:5] = 0.0


def _loc(data):
    close = data["close"]
    close.loc[close.index[0]] = 0.0


def _loc_column(data):  # pandas re-raises this one as a TypeError
    close = data["close"]
    close.loc[:, "A0"] = 0.0


def _iat(data):
    close = data["close"]
    close.iat[0, 0] = 1.0


def _at(data):
    close = data["close"]
    close.at[close.index[0], "A0"] = 1.0


def _values(data):
    data["close"].values[0, 0] = 1.0


def _to_numpy(data):
    data["close"].to_numpy()[0, 0] = 1.0


def _boolean_mask(data):
    close = data["close"]
    close[close > 60.0] = 60.0


def _column_add_in_place(data):  # a TypeError from pandas, a read-only ValueError behind it
    close = data["close"]
    close.iloc[:, 0] += 1.0


def _fillna_in_place(data):
    close = data.close
    close.fillna(0.0, inplace=True)


def _ffill_in_place(data):
    close = data["close"]
    close.ffill(inplace=True)


def _clip_in_place(data):
    close = data["close"]
    close.clip(upper=60.0, inplace=True)


def _where_in_place(data):
    close = data["close"]
    close.where(close < 60.0, 60.0, inplace=True)


def _update(data):
    close = data["close"]
    close.update(close * 0.0)


def _numpy_out(data):
    close = data["close"]
    np.log(close.values, out=close.values)


def _array(data):
    data.array("close")[0, 0] = 1.0


def _array_add_in_place(data):
    close = data.array("close")
    close += 1.0


def _returns(data):
    data.returns()[1, 0] = 0.0


WRITES: list[Callable[[MarketData], None]] = [
    _iloc, _iloc_rows, _loc, _loc_column, _iat, _at, _values, _to_numpy, _boolean_mask,
    _column_add_in_place, _fillna_in_place, _ffill_in_place, _clip_in_place, _where_in_place,
    _update, _numpy_out, _array, _array_add_in_place, _returns]


def _writer(write: Callable[[MarketData], None]) -> Strategy:
    def writes(data):
        write(data)
        return data["close"] * 0.0

    return Strategy(writes, name=f"writes{write.__name__}")


@pytest.mark.filterwarnings("ignore::pandas.errors.ChainedAssignmentError")
@pytest.mark.parametrize("write", WRITES, ids=lambda f: f.__name__.strip("_"))
def test_every_in_place_write_is_a_data_write_error_and_changes_nothing(write):
    data = gappy_panel()
    before = {name: data.array(name).copy() for name in data.fields}
    returns_before = data.returns().copy()
    with pytest.raises((ValueError, TypeError)) as raw:
        write(data)  # the memory refuses it; pandas or numpy says so, as they word it
    assert "read-only" in f"{raw.value} {raw.value.__cause__}"
    strategy = _writer(write)
    with pytest.raises(DataWriteError) as caught:
        strategy.run(data)
    error = caught.value
    assert isinstance(error, StrategyError) and isinstance(error, ValueError)
    message = str(error)
    assert f"strategy {strategy.name!r} wrote into read-only memory" in message
    assert "the market data is shared by every trial and read-only" in message.lower()
    assert "close = data['close'].copy()" in message
    assert isinstance(error.__cause__, (ValueError, TypeError))  # pandas' own, chained
    for name, values in before.items():
        np.testing.assert_array_equal(data.array(name), values)
    np.testing.assert_array_equal(data.returns(), returns_before)
    assert MarketData(before, data.index, data.assets).content_hash == data.content_hash


def test_a_write_into_a_frame_pandas_made_is_reported_with_its_fix_too():
    @foldwise.strategy
    def trims(data, slow=20):
        signal = (data["close"] > data["close"].rolling(slow).mean()).astype(float)
        weights = signal.to_numpy()   # pandas' .to_numpy() is a read-only view as well
        weights[:slow] = 0.0
        return weights

    with pytest.raises(DataWriteError, match=r"\.to_numpy\(copy=True\)"):
        trims.run(make_panel(60, 2))


def test_writing_into_a_copy_works_and_other_errors_pass_unchanged():
    data = gappy_panel()

    @foldwise.strategy
    def copies(data):
        close = data["close"].copy()
        close.iloc[:, 0] = 0.0
        close["A1"] = close["A1"].fillna(0.0)
        raw = data.array("close").copy()
        raw[0] = 0.0
        return (close > 0).astype(float) / data.n_assets

    copies.run(data)

    @foldwise.strategy
    def refuses(data):
        raise ValueError("this broker does not trade on Mondays")

    with pytest.raises(ValueError, match="Mondays") as caught:
        refuses.run(data)
    assert type(caught.value) is ValueError


def test_a_data_write_error_fails_the_trial_as_the_strategys_own(tmp_path):
    cache = foldwise.BacktestCache(tmp_path / "cache")
    with pytest.raises(DataWriteError) as caught:
        cache.get_or_run(_writer(_fillna_in_place), {}, gappy_panel())
    assert raised_by_strategy(caught.value)
