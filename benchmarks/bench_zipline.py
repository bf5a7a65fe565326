"""foldwise's pipeline engine next to zipline-reloaded's, on the same panel, in one process.

Both engines compute the same pipelines over the same synthetic panel (2268 dates x 500
assets of random-walk closes, seed 0; no missing value, no adjustment):

(a) a 9-column pipeline — Returns(20), Returns(60), SMA(50), SMA(10) / SMA(50) - 1, a
    Reversion ``CustomFactor`` (window 60, ``out[:] = -prices[-1] / np.mean(prices,
    axis=0)``), AnnualizedVolatility(60), the rank of Returns(20), the zscore of Reversion
    and a composite of zscores — screened by the composite's top 5;
(b) the Reversion ``CustomFactor`` alone (window 60, no screen).

Zipline runs its own ``SimplePipelineEngine`` with a ``DataFrameLoader`` over the closes
(shifted by one session, as its docstring asks of OHLCV data, so that a row dated ``D``
sees the bars through ``D - 1`` — foldwise's convention too), an in-memory SQLite asset
database of 500 equities alive over the whole panel and an ``EquitySessionDomain`` on the
panel's dates. foldwise runs ``run_pipeline`` on a ``MarketData`` over the same array.
Before timing, the two outputs are checked to hold the same (date, asset) rows and the
same values (the largest absolute difference is printed). Each engine then runs
``--repeat`` times per case, alternating; the medians of wall-clock and of CPU time and
their ratios (zipline / foldwise) are printed (a target is met when both ratios meet it).

Case (b) also times, in the same alternation, the factor's own ``compute`` called once per
date over the same 60-row windows (views of the closes) into a preallocated output, with
no engine around it: what any engine running this factor must spend, since both run
``compute`` once per date. Zipline's time over it bounds the ratio any engine could reach
on (b), and foldwise's time over it is foldwise's overhead.

zipline-reloaded is not a dependency of foldwise: it pins its own versions of pandas and
other packages and needs compiled extensions. Run this script in a separate virtual
environment holding both::

    python benchmarks/bench_zipline.py --make-venv /tmp/zipline-venv   # about a minute
    /tmp/zipline-venv/bin/python benchmarks/bench_zipline.py

``--make-venv DIR`` runs ``python -m venv DIR``, ``DIR/bin/pip install
zipline-reloaded==3.2.1`` and ``DIR/bin/pip install -e <this checkout>``. Without zipline
importable, the script says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ZIPLINE_REQUIREMENT = "zipline-reloaded==3.2.1"
ROOT = Path(__file__).resolve().parent.parent


def make_venv(directory: Path) -> int:
    """Create a virtual environment with zipline-reloaded and this checkout of foldwise."""
    python = directory / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(directory)],
        [str(python), "-m", "pip", "install", ZIPLINE_REQUIREMENT],
        [str(python), "-m", "pip", "install", "-e", str(ROOT)],
    ]
    for step in steps:
        print("$", " ".join(step), flush=True)
        done = subprocess.run(step, check=False)
        if done.returncode != 0:
            print(f"failed with status {done.returncode}: {' '.join(step)}", file=sys.stderr)
            return done.returncode
    print(f"\nready; run:\n  {python} {Path(__file__).resolve()}")
    return 0


def zipline_missing_message() -> str:
    return (
        "zipline-reloaded is not importable in this environment "
        f"({sys.executable}). It is not a dependency of foldwise; make a separate virtual "
        "environment with both (about a minute) and run the script there:\n"
        f"  python {Path(__file__).name} --make-venv /tmp/zipline-venv\n"
        f"  /tmp/zipline-venv/bin/python {Path(__file__).resolve()}\n"
        f"(or by hand: python -m venv DIR; DIR/bin/pip install {ZIPLINE_REQUIREMENT}; "
        f"DIR/bin/pip install -e {ROOT})")


def synthetic_closes(n_dates: int, n_assets: int, seed: int = 0
                     ) -> tuple[pd.DatetimeIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    closes = 50 * np.exp(np.cumsum(rng.normal(0.0002, 0.02, (n_dates, n_assets)), axis=0))
    return pd.bdate_range("2010-01-04", periods=n_dates), closes


def paired_medians(funcs: list[Callable[[], Any]], repeat: int) -> list[tuple[float, float]]:
    """Median wall-clock and CPU seconds of each function; the functions run in turn so
    that all see the same machine load. (CPU time, the process's own, is the steadier
    figure on a machine shared with other work.)"""
    samples: list[list[tuple[float, float]]] = [[] for _ in funcs]
    for _ in range(repeat):
        for func, times in zip(funcs, samples, strict=True):
            wall, cpu = time.perf_counter(), time.process_time()
            func()
            times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(statistics.median(t[0] for t in times), statistics.median(t[1] for t in times))
            for times in samples]


def compute_alone(term: Any, closes: np.ndarray, index: pd.DatetimeIndex, first: int,
                  last: int) -> Callable[[], np.ndarray]:
    """The term's ``compute`` called once per date ``first .. last`` (positions) over its
    windows of the closes (views, oldest row first, ending with the bar before each
    date) into a preallocated NaN-filled output: the factor's own work, no engine."""
    window = term.window_length
    windows = np.lib.stride_tricks.sliding_window_view(closes[first - window:last], window,
                                                       axis=0)
    windows = np.moveaxis(windows, -1, 1)
    assert windows.shape == (last - first + 1, window, closes.shape[1])
    days = list(index[first:last + 1])
    assets = np.array([f"S{i:03d}" for i in range(closes.shape[1])], dtype=object)

    def run() -> np.ndarray:
        out = np.full((len(days), closes.shape[1]), np.nan)
        for today, row, prices in zip(days, out, windows, strict=True):
            term.compute(today, assets, row, prices)
        return out

    return run


# --- foldwise ----------------------------------------------------------------------------------


def foldwise_side(index: pd.DatetimeIndex, closes: np.ndarray) -> tuple[Any, dict[str, Any]]:
    from foldwise import MarketData
    from foldwise.pipeline import CustomFactor, EquityPricing, Pipeline
    from foldwise.pipeline.factors import AnnualizedVolatility, Returns, SimpleMovingAverage

    class Reversion(CustomFactor):
        inputs = (EquityPricing.close,)
        window_length = 60

        def compute(self, today, assets, out, prices):
            out[:] = -prices[-1] / np.mean(prices, axis=0)

    data = MarketData({"close": closes}, index, [f"S{i:03d}" for i in range(closes.shape[1])])
    r20 = Returns(window_length=20)
    sma50 = SimpleMovingAverage(inputs=[EquityPricing.close], window_length=50)
    reversion = Reversion()
    vol = AnnualizedVolatility(window_length=60)
    composite = r20.zscore() + reversion.zscore() - vol.zscore()
    nine = Pipeline({
        "r20": r20, "r60": Returns(window_length=60), "sma50": sma50,
        "trend": SimpleMovingAverage(inputs=[EquityPricing.close], window_length=10) / sma50 - 1,
        "reversion": reversion, "vol": vol, "rank": r20.rank(), "z": reversion.zscore(),
        "composite": composite,
    }, screen=composite.top(5))
    return data, {"nine": nine, "reversion": Pipeline({"reversion": Reversion()})}


# --- zipline -----------------------------------------------------------------------------------


def zipline_side(index: pd.DatetimeIndex, closes: np.ndarray) -> tuple[Any, dict[str, Any]]:
    import sqlalchemy as sa
    from zipline.assets import AssetDBWriter, AssetFinder
    from zipline.assets.synthetic import make_simple_equity_info
    from zipline.pipeline import CustomFactor, Pipeline, SimplePipelineEngine
    from zipline.pipeline.data import EquityPricing
    from zipline.pipeline.domain import EquitySessionDomain
    from zipline.pipeline.factors import AnnualizedVolatility, Returns, SimpleMovingAverage
    from zipline.pipeline.loaders.frame import DataFrameLoader

    class Reversion(CustomFactor):
        inputs = (EquityPricing.close,)
        window_length = 60

        def compute(self, today, assets, out, prices):
            out[:] = -prices[-1] / np.mean(prices, axis=0)

    n_assets = closes.shape[1]
    sids = np.arange(1, n_assets + 1)
    engine_db = sa.create_engine("sqlite://")
    equities = make_simple_equity_info(
        sids, index[0] - pd.Timedelta(days=30), index[-1] + pd.Timedelta(days=30),
        symbols=[f"S{i:03d}" for i in range(n_assets)], exchange="BENCH")
    exchanges = pd.DataFrame({"exchange": ["BENCH"], "canonical_name": ["BENCH"],
                              "country_code": ["US"]})
    AssetDBWriter(engine_db).write(equities=equities, exchanges=exchanges)
    finder = AssetFinder(engine_db)
    # DataFrameLoader wants each row labelled by the first session it is known on: the
    # close of bar t is known on session t + 1.
    shifted = pd.DataFrame(closes[:-1], index=index[1:], columns=sids)
    domain = EquitySessionDomain(index[1:], "US")
    loader = DataFrameLoader(EquityPricing.close, shifted)

    def get_loader(column: Any) -> Any:
        if column.unspecialize() == EquityPricing.close:
            return loader
        raise ValueError(f"no loader for {column}")

    engine = SimplePipelineEngine(get_loader, finder, default_domain=domain)
    r20 = Returns(window_length=20)
    sma50 = SimpleMovingAverage(inputs=[EquityPricing.close], window_length=50)
    reversion = Reversion()
    vol = AnnualizedVolatility(window_length=60)
    composite = r20.zscore() + reversion.zscore() - vol.zscore()
    nine = Pipeline({
        "r20": r20, "r60": Returns(window_length=60), "sma50": sma50,
        "trend": SimpleMovingAverage(inputs=[EquityPricing.close], window_length=10) / sma50 - 1,
        "reversion": reversion, "vol": vol, "rank": r20.rank(), "z": reversion.zscore(),
        "composite": composite,
    }, screen=composite.top(5), domain=domain)
    return engine, {"nine": nine,
                    "reversion": Pipeline({"reversion": Reversion()}, domain=domain)}


def max_difference(ours: pd.DataFrame, theirs: pd.DataFrame, n_assets: int,
                   ) -> tuple[float, float]:
    """Largest absolute difference over every column, and the largest relative to the
    magnitude of the value (``|a - b| / max(1, |b|)``), after checking that the two
    frames hold the same rows and NaN in the same cells."""
    sid_to_label = {i + 1: f"S{i:03d}" for i in range(n_assets)}
    dates = theirs.index.get_level_values(0)
    labels = [sid_to_label[asset.sid] for asset in theirs.index.get_level_values(1)]
    theirs = theirs.set_axis(pd.MultiIndex.from_arrays([dates, labels], names=["date", "asset"]))
    if not ours.index.equals(theirs.index):
        missing = theirs.index.difference(ours.index)
        extra = ours.index.difference(theirs.index)
        raise AssertionError(f"the engines kept different rows: {len(missing)} only in "
                             f"zipline's output, {len(extra)} only in foldwise's")
    absolute = relative = 0.0
    for name in ours.columns:
        a, b = ours[name].to_numpy(np.float64), theirs[name].to_numpy(np.float64)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            raise AssertionError(f"{name}: NaN in different cells")
        finite = ~np.isnan(a)
        if finite.any():
            gap = np.abs(a[finite] - b[finite])
            absolute = max(absolute, float(gap.max()))
            relative = max(relative, float((gap / np.maximum(1.0, np.abs(b[finite]))).max()))
    return absolute, relative


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per engine and case")
    parser.add_argument("--dates", type=int, default=2268)
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--make-venv", type=Path, metavar="DIR",
                        help="create DIR with zipline-reloaded and this foldwise, then exit")
    args = parser.parse_args()
    if args.make_venv is not None:
        return make_venv(args.make_venv)
    if importlib.util.find_spec("zipline") is None:
        print(zipline_missing_message(), file=sys.stderr)
        return 2

    import zipline

    from foldwise.pipeline import run_pipeline

    warnings.filterwarnings("ignore", category=RuntimeWarning)  # zipline's empty-window means
    warnings.filterwarnings("ignore", category=FutureWarning)  # zipline's asset writer, pandas
    index, closes = synthetic_closes(args.dates, args.assets)
    data, ours = foldwise_side(index, closes)
    engine, theirs = zipline_side(index, closes)
    # A start that leaves both engines the history every window needs (61 bars).
    first_position = 100
    start, end = index[first_position], index[-1]
    print(f"panel: {args.dates} dates x {args.assets} assets (seed 0), {start.date()} .. "
          f"{end.date()} computed, zipline-reloaded {zipline.__version__}, median of "
          f"{args.repeat} runs")
    cases = [("(a) 9 columns, screen top(5)", "nine", 10.0),
             ("(b) Reversion CustomFactor, w=60", "reversion", 5.0)]
    for label, key, target in cases:
        frame = run_pipeline(ours[key], data, start, end)
        absolute, relative = max_difference(
            frame, engine.run_pipeline(theirs[key], start, end), args.assets)
        funcs = [lambda k=key: run_pipeline(ours[k], data, start, end),
                 lambda k=key: engine.run_pipeline(theirs[k], start, end)]
        if key == "reversion":
            alone = compute_alone(ours[key].columns["reversion"], closes, index,
                                  first_position, len(index) - 1)
            np.testing.assert_array_equal(alone().reshape(-1), frame["reversion"].to_numpy())
            funcs.append(alone)
        timings = paired_medians(funcs, args.repeat)
        (ours_wall, ours_cpu), (theirs_wall, theirs_cpu) = timings[:2]
        ratio, cpu_ratio = theirs_wall / ours_wall, theirs_cpu / ours_cpu
        verdict = "meets" if min(ratio, cpu_ratio) >= target else "BELOW"
        print(f"{label:<34} foldwise {ours_wall * 1e3:7.1f} ms   zipline "
              f"{theirs_wall * 1e3:7.1f} ms   {ratio:5.1f}x faster ({verdict} the "
              f"{target:g}x target)")
        print(f"{'':<34} CPU time: foldwise {ours_cpu * 1e3:7.1f} ms   zipline "
              f"{theirs_cpu * 1e3:7.1f} ms   {cpu_ratio:5.1f}x")
        print(f"{'':<34} {len(frame)} rows equal; max |diff| {absolute:.1e}, relative to "
              f"max(1, |value|) {relative:.1e}")
        if len(timings) > 2:
            alone_wall, alone_cpu = timings[2]
            print(f"{'':<34} compute() alone, no engine: {alone_wall * 1e3:.1f} ms (CPU "
                  f"{alone_cpu * 1e3:.1f} ms); zipline / it {theirs_wall / alone_wall:.1f}x "
                  f"(CPU {theirs_cpu / alone_cpu:.1f}x),")
            print(f"{'':<34} the most any engine could gain; foldwise / it "
                  f"{ours_wall / alone_wall:.2f} (CPU {ours_cpu / alone_cpu:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
