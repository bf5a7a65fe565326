"""Pipeline speed next to hand-written numpy computing the same numbers, in the same run.

On a synthetic panel of 2520 dates x 500 assets (seed 0):

(a) ``Reversion`` as a ``CustomFactor`` (window 60), whose ``compute`` runs once per date on
    a sliding-window view — next to ``-close / rolling mean`` from running sums;
(b) a 9-column pipeline — Returns(20), Returns(60), SMA(50), SMA(10)/SMA(50) - 1,
    Reversion, AnnualizedVolatility(60), the rank of Returns(20), the zscore of Reversion and
    a composite of zscores — screened by the composite's top 5, next to the same arrays and
    screen written by hand with numpy.

Each side runs several times and the median is reported with the ratio (ours / numpy);
both sides are checked to give the same numbers before timing.

    python benchmarks/bench_pipeline.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from foldwise import MarketData
from foldwise.pipeline import CustomFactor, EquityPricing, Pipeline, run_pipeline
from foldwise.pipeline.factors import AnnualizedVolatility, Returns, SimpleMovingAverage


class Reversion(CustomFactor):
    inputs = (EquityPricing.close,)
    window_length = 60

    def compute(self, today, assets, out, prices):
        out[:] = -prices[-1] / np.mean(prices, axis=0)


def synthetic_panel(n_dates: int = 2520, n_assets: int = 500, seed: int = 0) -> MarketData:
    rng = np.random.default_rng(seed)
    closes = 50 * np.exp(np.cumsum(rng.normal(0.0002, 0.02, (n_dates, n_assets)), axis=0))
    index = pd.bdate_range("2010-01-04", periods=n_dates)
    return MarketData({"close": closes}, index, [f"S{i:03d}" for i in range(n_assets)])


# --- the hand-written numpy side -------------------------------------------------------------


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean from running sums; row t averages rows t - window + 1 .. t."""
    sums = np.cumsum(x, axis=0)
    out = np.full(x.shape, np.nan)
    out[window - 1] = sums[window - 1]
    out[window:] = sums[window:] - sums[:-window]
    return out / window


def change(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    out[window - 1:] = (x[window - 1:] - x[: len(x) - window + 1]) / x[: len(x) - window + 1]
    return out


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)


def numpy_reversion(close: np.ndarray) -> np.ndarray:
    """Values dated by the bar after the one they use (the pipeline's convention)."""
    out = np.full(close.shape, np.nan)
    out[1:] = (-close / rolling_mean(close, 60))[:-1]
    return out


def numpy_nine_columns(close: np.ndarray, first: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    r20, r60 = change(close, 20), change(close, 60)
    sma50, sma10 = rolling_mean(close, 50), rolling_mean(close, 10)
    reversion = -close / rolling_mean(close, 60)
    daily = change(close, 2)
    mean = rolling_mean(np.nan_to_num(daily), 60)
    square = rolling_mean(np.nan_to_num(daily) ** 2, 60)
    vol = np.sqrt(np.maximum(square - mean * mean, 0.0)) * np.sqrt(252)
    vol[:60] = np.nan  # the first 60-return window ends on bar 60
    rank = np.empty(close.shape)
    np.put_along_axis(rank, np.argsort(r20, axis=1, kind="stable"),
                      np.arange(1.0, close.shape[1] + 1), axis=1)
    z_reversion = zscore(reversion)
    composite = zscore(r20) + z_reversion - zscore(vol)
    columns = {"r20": r20, "r60": r60, "sma50": sma50, "trend": sma10 / sma50 - 1,
               "reversion": reversion, "vol": vol, "rank": rank, "z": z_reversion,
               "composite": composite}
    top = np.zeros(close.shape, dtype=bool)
    picks = np.argpartition(-composite[first - 1:-1], 4, axis=1)[:, :5]
    np.put_along_axis(top[first:], picks, True, axis=1)
    dated = {name: np.concatenate([np.full((1, close.shape[1]), np.nan), v[:-1]])[first:]
             for name, v in columns.items()}
    return dated, top[first:]


# --- the pipeline side -----------------------------------------------------------------------


def nine_column_pipeline() -> Pipeline:
    r20 = Returns(window_length=20)
    sma50 = SimpleMovingAverage(inputs=[EquityPricing.close], window_length=50)
    reversion = Reversion()
    vol = AnnualizedVolatility(window_length=60)
    composite = r20.zscore() + reversion.zscore() - vol.zscore()
    return Pipeline({
        "r20": r20, "r60": Returns(window_length=60), "sma50": sma50,
        "trend": SimpleMovingAverage(inputs=[EquityPricing.close], window_length=10) / sma50 - 1,
        "reversion": reversion, "vol": vol, "rank": r20.rank(), "z": reversion.zscore(),
        "composite": composite,
    }, screen=composite.top(5))


def median_time(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        func()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def check_same(frame: pd.DataFrame, columns: dict[str, np.ndarray], screen: np.ndarray | None,
               data: MarketData, first: int) -> None:
    dates = data.index[first:]
    rows = dates.get_indexer(frame.index.get_level_values("date"))
    cols = data.assets.get_indexer(frame.index.get_level_values("asset"))
    if screen is not None:
        expected = np.zeros(screen.shape, dtype=bool)
        expected[rows, cols] = True
        assert np.array_equal(expected, screen), "the screens differ"
    for name, values in columns.items():
        np.testing.assert_allclose(frame[name].to_numpy(), values[rows, cols], rtol=1e-9,
                                   atol=1e-12, err_msg=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = synthetic_panel()
    close = data.array("close")
    print(f"panel: {data.n_dates} dates x {data.n_assets} assets (seed 0), "
          f"median of {args.repeat} runs")

    # (a) Reversion as a CustomFactor.
    single = Pipeline({"reversion": Reversion()})
    frame = run_pipeline(single, data)
    first = data.index.get_loc(frame.index.get_level_values("date")[0])
    check_same(frame, {"reversion": numpy_reversion(close)[first:]}, None, data, first)
    ours = median_time(lambda: run_pipeline(single, data), args.repeat)
    numpy = median_time(lambda: numpy_reversion(close), args.repeat)
    print(f"(a) Reversion CustomFactor, w=60   ours {ours * 1e3:8.1f} ms   "
          f"numpy {numpy * 1e3:8.1f} ms   ratio {ours / numpy:5.2f}x")

    # (b) The 9-column pipeline screened by top(5).
    nine = nine_column_pipeline()
    frame = run_pipeline(nine, data)
    first = data.index.get_loc(frame.index.get_level_values("date")[0])
    columns, screen = numpy_nine_columns(close, first)
    check_same(frame, columns, screen, data, first)
    ours = median_time(lambda: run_pipeline(nine, data), args.repeat)
    numpy = median_time(lambda: numpy_nine_columns(close, first), args.repeat)
    verdict = "within" if ours / numpy <= 3 else "OVER"
    print(f"(b) 9 columns, screen top(5)       ours {ours * 1e3:8.1f} ms   "
          f"numpy {numpy * 1e3:8.1f} ms   ratio {ours / numpy:5.2f}x   "
          f"({verdict} the 3x target)")


if __name__ == "__main__":
    main()
