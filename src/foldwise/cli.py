"""The ``foldwise`` command line.

``foldwise demo`` runs the main job on the bundled data; ``foldwise --version`` prints the
version. The CLI prints; the library logs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import pandas as pd

import foldwise
from foldwise.datasets import load_goog, load_sp500

__all__ = ["main"]

_SHOWN_METRICS = ("sharpe", "annual_return", "annual_volatility", "max_drawdown", "calmar",
                  "probabilistic_sharpe_ratio", "average_turnover", "n_trades")


def _demo(args: argparse.Namespace) -> int:
    costs = foldwise.Costs(commission_bps=args.commission_bps, slippage_bps=args.slippage_bps)
    goog = load_goog()
    sp500 = load_sp500()
    runs = {
        "sma_crossover(fast=10, slow=50) on GOOG": foldwise.examples.sma_crossover.run(
            goog, {"fast": 10, "slow": 50}, costs=costs),
        "mean_reversion(lookback=60, 5 long / 5 short) on 20 S&P 500 stocks":
            foldwise.examples.mean_reversion.run(sp500, {"lookback": 60, "rebalance": 5},
                                                 costs=costs),
    }
    print(f"foldwise {foldwise.__version__} demo: backtests of the bundled example strategies "
          f"({costs.total_bps:g} bps per unit traded)\n")
    table = pd.DataFrame({name: result.metrics() for name, result in runs.items()}).loc[
        list(_SHOWN_METRICS)]
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.width", 120):
        print(table.to_string())
    for name, result in runs.items():
        print(f"\n{name}: {result.index[0].date()} .. {result.index[-1].date()}, "
              f"final equity {result.equity.iloc[-1]:.2f}x, {result.n_trades} trades")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foldwise",
        description="Walk-forward parameter optimization of trading strategies.")
    parser.add_argument("--version", action="version", version=f"foldwise {foldwise.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the example strategies on the bundled data")
    demo.add_argument("--commission-bps", type=float, default=1.0,
                      help="commission in bps of traded notional (default 1)")
    demo.add_argument("--slippage-bps", type=float, default=2.0,
                      help="slippage in bps of traded notional (default 2)")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``foldwise`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except foldwise.FoldwiseError as exc:
        print(f"foldwise: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
