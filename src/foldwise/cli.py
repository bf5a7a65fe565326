"""The ``foldwise`` command line.

``foldwise demo`` runs the main job on the bundled data (a walk-forward optimization) and
writes its HTML report; ``foldwise run study.toml`` runs a study described by a config file
(:mod:`foldwise.cli_config`) and stores the config with it, so ``foldwise resume STUDY``
runs it again without the file; ``foldwise show STUDY`` prints the report of a stored study,
``foldwise report STUDY`` writes its HTML report, ``foldwise studies`` lists the studies
with their progress and ``foldwise delete STUDY --yes`` deletes one; ``foldwise repair STUDY`` mends a study journal with damaged lines (the whole journal:
its lost trials are listed, those of STUDY marked; see :func:`foldwise.repair_journal`);
``foldwise cache ...`` inspects
and maintains the backtest cache (``stats``, ``runs``, ``verify``, ``evict``, ``clear``);
``foldwise --version`` prints the version. The CLI prints; the library logs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

import foldwise
from foldwise._paths import resolve_root
from foldwise.cache import CACHE_DIR, PostgresIndex, parse_seconds, set_aside_index
from foldwise.cli_config import RunConfig, load_config
from foldwise.datasets import load_goog
from foldwise.errors import ConfigError, OptimizationError
from foldwise.optimizer import read_study
from foldwise.records import StudyRecord, read_run_config
from foldwise.storage import open_storage, parse_storage

__all__ = ["main"]

_SHOWN_METRICS = ("sharpe", "annual_return", "annual_volatility", "max_drawdown", "calmar",
                  "probabilistic_sharpe_ratio", "average_turnover", "n_trades")


def _location(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(storage, cache directory) from ``--storage`` / ``--dir``."""
    directory = getattr(args, "dir", None)
    storage = getattr(args, "storage", None)
    if storage is None and directory is not None:
        storage = f"journal:{directory}/studies.journal"
    return storage, directory


def _configured_cache(args: argparse.Namespace, directory: Any, *, read_only: bool = False
                      ) -> foldwise.BacktestCache | None:
    """The cache of ``directory`` with its index on the server of ``--index`` and its
    arrays at ``--artifacts``, when either is given (None when neither is: the defaults)."""
    index = getattr(args, "index", None)
    artifacts = getattr(args, "artifacts", None)
    if index is None and artifacts is None:
        return None
    if index is None:
        return foldwise.BacktestCache(directory, read_only=read_only,
                                      artifact_location=artifacts)
    return foldwise.BacktestCache(directory, backend=PostgresIndex(index, read_only=read_only),
                                  artifact_location=artifacts)


def _cluster_flags(args: argparse.Namespace) -> str:
    """The --index / --artifacts options given, to repeat in the commands printed."""
    return "".join(f" --{name} {shlex.quote(value)}" for name in ("index", "artifacts")
                   if (value := getattr(args, name, None)) is not None)


@contextlib.contextmanager
def _cache_of(args: argparse.Namespace, *, reading: bool = False
              ) -> Iterator[foldwise.BacktestCache | str | None]:
    """The cache of ``--dir`` (with ``--index`` / ``--artifacts`` when given), closed at the
    end. ``reading``: a cache directory that does not exist yet is not created."""
    directory = getattr(args, "dir", None)
    missing = not (resolve_root(directory) / CACHE_DIR).is_dir()
    cache = _configured_cache(args, directory, read_only=reading and missing)
    if cache is None:
        yield directory
        return
    with cache:
        yield cache


def _demo(args: argparse.Namespace) -> int:
    from foldwise.examples import sma_crossover

    storage, directory = _location(args)
    data = load_goog()
    splitter = foldwise.WalkForward(train="2Y", test="6M")
    costs = foldwise.Costs(commission_bps=args.commission_bps, slippage_bps=args.slippage_bps)
    print(f"foldwise {foldwise.__version__} demo: walk-forward optimization of an SMA crossover "
          f"on GOOG (bundled daily data), {len(splitter.folds(data))} folds of 2 years train / "
          f"6 months test, {args.trials} TPE trials per fold, {costs.total_bps:g} bps costs.")
    print("Run it again: the study resumes from its storage and every backtest comes from "
          "the cache.\n")
    with _cache_of(args) as cache:
        result = foldwise.optimize(
            sma_crossover, data, {"fast": foldwise.Int(5, 50), "slow": foldwise.Int(20, 200)},
            splitter, constraints="fast < slow", metric="sharpe", n_trials=args.trials,
            study=args.study, storage=storage, cache=cache, seed=args.seed, costs=costs,
            n_jobs=args.jobs, show_progress=not args.quiet)
    print(result.text_report())
    print(f"\nstored in {result.location} (study {result.name!r}); inspect it again with "
          f"`foldwise show {result.name}`" + (f" --dir {directory}" if directory else ""))
    report = _write_report(result, _report_path(args.output, directory, result.name))
    print(f"HTML report: {report}")
    return 0


# --- reports -------------------------------------------------------------------------------


def _report_path(output: str | None, directory: str | None, study: str) -> Path:
    """``output``, or ``<foldwise dir>/report-<study>.html``."""
    if output is not None:
        return Path(output)
    return resolve_root(directory) / f"report-{re.sub(r'[^A-Za-z0-9._-]', '-', study)}.html"


def _file_size(path: Path) -> str:
    size = float(path.stat().st_size)
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def _write_report(result: foldwise.WalkForwardResult, path: Path,
                  overfitting: bool = True) -> str:
    """Write the HTML report of ``result`` to ``path``; ``"<path> (<size>)"``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = result.report(path, overfitting=overfitting)
    return f"{written} ({_file_size(written)})"


def _report(args: argparse.Namespace) -> int:
    storage, directory = _location(args)
    with _cache_of(args, reading=True) as cache:
        result = foldwise.load_result(args.study, storage=storage, cache=cache)
        report = _write_report(result, _report_path(args.output, directory, result.name),
                               overfitting=not args.no_overfitting)
    print(f"wrote the report of study {result.name!r}: {report}")
    if result.runs_rebuilt:
        print(f"{result.runs_rebuilt} run(s) were missing from the cache and were re-created "
              "from the study.")
    return 0


# --- studies from config files -------------------------------------------------------------


def _where_flags(config: RunConfig) -> str:
    """The --storage / --dir options that find the study of ``config`` and its cache again."""
    flags = [] if config.storage is None else ["--storage", config.storage]
    if config.dir is not None:
        flags += ["--dir", config.dir]
    return "".join(f" {shlex.quote(flag)}" for flag in flags)


def _run_config(config: RunConfig, args: argparse.Namespace, *, resumed: bool) -> int:
    """Run the optimization ``config`` describes (its file's or the one stored)."""
    arguments = config.optimize_arguments()  # imports the strategy, reads the data
    # the cache's rows on a database server, its arrays in a shared location
    arguments["cache"] = _configured_cache(args, arguments["cache"]) or arguments["cache"]
    data, splitter = arguments["data"], arguments["splitter"]
    n_folds = len(splitter.folds(data))
    first, last = data.index[0].date(), data.index[-1].date()
    doing = "resuming" if resumed else "running"
    print(f"foldwise {foldwise.__version__}: {doing} study {config.study!r}: {config.strategy} "
          f"on {config.data.describe()} ({data.n_dates} bars {first}..{last} x "
          f"{data.n_assets} asset(s)), {n_folds} fold(s) of {splitter!r}, {config.n_trials} "
          f"trials per {'fold' if config.mode == 'walk_forward' else 'study'}, metric "
          f"{config.metric}.\n")
    result = foldwise.optimize(**arguments, show_progress=not args.quiet)
    print(result.text_report())
    flags = _where_flags(config) + _cluster_flags(args)
    print(f"\nstored in {result.location} (study {result.name!r}, with its config); "
          f"`foldwise show {result.name}{flags}` prints this again, `foldwise report "
          f"{result.name}{flags}` writes the HTML report"
          + ("" if result.complete else f", `foldwise resume {result.name}{flags}` finishes "
             "it") + ".")
    return 0


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.dir is not None or args.storage is not None:
        config = config.with_location(args.dir, args.storage)
    return _run_config(config, args, resumed=False)


def _no_study(name: str, where: str, names: Sequence[str]) -> OptimizationError:
    return OptimizationError(
        f"no study named {name!r} in {where}; the studies there are {list(names)}. Check the "
        "name and --dir/--storage (`foldwise studies` lists them).")


def _resume(args: argparse.Namespace) -> int:
    storage, _ = _location(args)
    spec = parse_storage(storage)
    opened = open_storage(spec, read_only=True)
    names = foldwise.list_studies(opened)
    if args.study not in names:
        raise _no_study(args.study, str(spec), names)
    stored = read_run_config(optuna.load_study(study_name=args.study, storage=opened))
    if stored is None:
        raise ConfigError(
            f"study {args.study!r} in {spec} was not started from a config file (it was "
            "started from Python, or by foldwise demo): resume it by calling optimize again "
            "with the same arguments (the demo: by running it again).")
    config = RunConfig.from_json(stored, origin=f"the config stored with study {args.study!r}")
    if args.dir is not None or args.storage is not None:
        config = config.with_location(args.dir, args.storage)
    return _run_config(config, args, resumed=True)


def _delete(args: argparse.Namespace) -> int:
    storage, directory = _location(args)
    spec = parse_storage(storage)
    names = foldwise.list_studies(storage)
    if args.study not in names:
        raise _no_study(args.study, str(spec), names)
    if not args.yes:
        try:
            record = read_study(args.study, open_storage(spec, read_only=True), str(spec))
            what = (f" ({len(record.manifest.folds)} folds, "
                    f"{sum(len(t) for t in record.trials.values())} trials)")
        except foldwise.FoldwiseError:
            what = ""
        print(f"this would delete study {args.study!r}{what} from {spec}; run again with "
              "--yes to do it", file=sys.stderr)
        return 1
    count = foldwise.delete_study(args.study, storage, cache=directory)
    print(f"deleted study {args.study!r} ({count} Optuna studies) from {spec}; its cached "
          "backtests are kept, no longer pinned (`foldwise cache evict` removes them)")
    return 0


def _show(args: argparse.Namespace) -> int:
    storage, _ = _location(args)
    with _cache_of(args, reading=True) as cache:
        result = foldwise.load_result(args.study, storage=storage, cache=cache)
        print(result.text_report(overfitting=not args.no_overfitting))
    if result.runs_rebuilt:
        print(f"\n{result.runs_rebuilt} run(s) were missing from the cache and were re-created "
              "from the study.")
    return 0


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _progress_row(name: str, record: StudyRecord, from_config: bool) -> list[str]:
    """One row of ``foldwise studies``: a study's progress, read from its records only."""
    manifest = record.manifest
    counts = [sum(t.uses_budget for t in trials) for trials in record.trials.values()]
    budget = manifest.n_trials
    low, high = (min(counts), max(counts)) if counts else (0, 0)
    done = f"{low}" if low == high else f"{low}..{high}"
    trials = f"{done}/{'?' if budget is None else budget}"
    if budget is None:
        status = "unknown"
    else:
        short = sum(c < budget for c in counts) + (len(manifest.folds) - len(counts)
                                                   if manifest.mode == "walk_forward" else 0)
        unit = "fold" if manifest.mode == "walk_forward" else "study"
        status = "complete" if not short else f"incomplete ({short} {unit}{'s' * (short > 1)} short)"
    times = [t for trials in record.trials.values() for trial in trials
             for t in (trial.started, trial.completed) if t is not None]
    folds = str(len(manifest.folds)) + (" (cv)" if manifest.mode == "cv" else "")
    return [name, folds, trials, status, manifest.strategy.name,
            f"{manifest.metric} ({manifest.direction[:3]})",
            _when(min(times, default=None)), _when(max(times, default=None)),
            "config" if from_config else "python"]


def _studies(args: argparse.Namespace) -> int:
    storage, _ = _location(args)
    # read only: a --dir/--storage that does not exist is an error (exit 1), the default
    # storage that does not exist yet just holds no study
    names = foldwise.list_studies(storage)
    where = parse_storage(storage)
    if not names:
        if storage is None and not Path(where.location).exists():
            print(f"no studies yet: {where} does not exist (`foldwise demo` or "
                  "foldwise.optimize creates it)")
        else:
            print(f"no studies in {where}")
        return 0
    opened = open_storage(where, read_only=True)
    rows = [["study", "folds", "trials/fold", "status", "strategy", "metric", "first trial",
             "last trial", "started from"]]
    for name in names:
        try:
            record = read_study(name, opened, str(where))
            from_config = read_run_config(
                optuna.load_study(study_name=name, storage=opened)) is not None
        except foldwise.FoldwiseError as exc:
            rows.append([name, "-", "-", f"unreadable: {exc}"])
            continue
        rows.append(_progress_row(name, record, from_config))
    full = [row for row in rows if len(row) == len(rows[0])]  # not the unreadable ones
    widths = [max(len(row[i]) for row in full) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width)
                        for cell, width in zip(row, widths, strict=False)).rstrip())
    print(f"\n{len(names)} stud{'y' if len(names) == 1 else 'ies'} in {where}")
    return 0


def _of_study(name: str, study: str) -> bool:
    """Whether Optuna study ``name`` belongs to optimization ``study`` (itself or a fold)."""
    return name == study or name.startswith(f"{study}/fold-")


def _repair(args: argparse.Namespace) -> int:
    storage, _ = _location(args)
    report = foldwise.repair_journal(storage, dry_run=args.dry_run)
    if report.ok:
        print(f"the journal {report.path} is intact ({report.lines} lines): nothing to repair")
        return 0
    verb = "would drop" if args.dry_run else "dropped"
    for line in report.damaged:
        print(f"{verb} line {line.number} (byte offset {line.offset}): {line.reason}; it held "
              f"{line.held}")
    for trial in report.lost_trials:
        mark = f"  [{args.study}]" if _of_study(trial.study, args.study) else ""
        print(f"lost trial {trial.number} of study {trial.study!r} (was {trial.state}; line "
              f"{trial.line}){mark}")
    for study in report.lost_studies:
        mark = f"  [{args.study}]" if _of_study(study.name, args.study) else ""
        print(f"lost study {study.name or '(name unreadable)'!r} with its {study.trials} "
              f"trial(s) (line {study.line}){mark}")
    for note in report.notes:
        print(f"note: {note}")
    studies = [s for s in report.lost_studies if _of_study(s.name, args.study)]
    ours = sum(1 for t in report.lost_trials if _of_study(t.study, args.study)) + sum(
        s.trials for s in studies)
    others = report.to_rerun - ours
    if args.dry_run:
        print("dry run: nothing was changed; run it without --dry-run to repair")
    else:
        print(f"repaired {report.path}; the damaged journal is kept as {report.backup}")
    then = "then " if args.dry_run else ""
    what = (f"{then}run the same optimize call of {args.study!r} to re-run its {ours} lost "
            "trial(s)" if ours or studies else f"{args.study!r} lost no trial")
    if studies:
        what += f" and create its {len(studies)} lost study(ies) again"
    if others:
        what += f"; {others} lost trial(s) belong to other studies: re-run their optimize calls"
    print(f"next: {what}")
    return 0


# --- foldwise cache ------------------------------------------------------------------------

_INDEX_HELP = ("the cache index on a PostgreSQL server (postgresql+psycopg://user@host/db), as "
               "a cluster keeps it (default: the SQLite index in --dir)")
_ARTIFACTS_HELP = ("where the cache keeps run arrays: a directory every worker sees, or an "
                   "object store URL (s3://bucket/prefix?endpoint_override=host:port, gs://...) "
                   "(default: the cache directory in --dir)")

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
               "g": 1024**3, "gb": 1024**3, "t": 1024**4, "tb": 1024**4}


def _size(text: str) -> int:
    """``"500M"``, ``"2G"``, ``"1.5GB"`` or a number of bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; use bytes or a number with K, M, G or T (e.g. 500M, 2G).")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _duration(text: str) -> float:
    """``"30d"``, ``"12h"``, ``"90min"``, ``"3600"`` (seconds)."""
    try:
        return parse_seconds(text)
    except foldwise.FoldwiseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _open_cache(args: argparse.Namespace) -> foldwise.BacktestCache:
    directory = getattr(args, "dir", None)
    return _configured_cache(args, directory) or foldwise.BacktestCache(directory)


def _read_cache(args: argparse.Namespace) -> foldwise.BacktestCache | None:
    """The cache of ``--dir`` opened for reading: nothing is created, and a read-only one
    can be read. A ``--dir`` without a cache is an error; the default cache not existing
    yet is said and gives None."""
    directory = getattr(args, "dir", None)
    cache = (_configured_cache(args, directory, read_only=True)
             or foldwise.BacktestCache(directory, read_only=True))
    if cache.exists:
        return cache
    if directory is not None:
        raise foldwise.errors.CacheNotFoundError(
            f"no backtest cache at {cache.directory}: the directory does not exist. Check "
            "--dir (the foldwise directory that holds cache/ and studies.journal).")
    print(f"no backtest cache yet: {cache.directory} does not exist (`foldwise demo` or "
          "foldwise.optimize creates it)")
    return None


def _cache_stats(args: argparse.Namespace) -> int:
    cache = _read_cache(args)
    if cache is not None:
        with cache:
            print(cache.stats())
    return 0


def _cache_runs(args: argparse.Namespace) -> int:
    cache = _read_cache(args)
    if cache is None:
        return 0
    with cache:
        runs = cache.runs(args.strategy, kind=args.kind)
    if runs.empty:
        print(f"no stored runs in {cache.directory}")
        return 0
    if args.sort is not None:
        if args.sort not in runs.columns:
            print(f"foldwise: error: cannot sort by {args.sort!r}; columns: "
                  f"{', '.join(runs.columns)}", file=sys.stderr)
            return 2
        runs = runs.sort_values(args.sort, ascending=args.ascending, na_position="last")
    shown = [c for c in runs.columns if c.startswith(("params_", "window_"))] + [
        c for c in _SHOWN_METRICS if c in runs.columns]
    table = runs[["strategy", *shown]].head(args.limit)
    table.index = table.index.str[:12]
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.width", 160,
                           "display.max_columns", None):
        print(table.to_string())
    if len(runs) > args.limit:
        print(f"... {len(runs) - args.limit} more (--limit)")
    return 0


def _cache_verify(args: argparse.Namespace) -> int:
    if not args.repair:  # only reads
        reader = _read_cache(args)
        if reader is None:
            return 0
        with reader:
            report = reader.verify(grace=args.grace)
        print(report)
        return 0 if report.ok else 1
    try:
        cache = _open_cache(args)
    except foldwise.errors.CacheCorruptedError:
        if not args.repair:
            raise
        # an index too damaged to open: set it aside, start empty, then sweep the orphans
        moved = set_aside_index(getattr(args, "dir", None))
        print(f"the damaged cache index was moved to {moved}; an empty index started (runs "
              "are re-created when asked for)")
        cache = _open_cache(args)
    report = cache.verify(repair=args.repair, grace=args.grace)
    print(report)
    return 0 if report.ok or args.repair else 1


def _cache_evict(args: argparse.Namespace) -> int:
    if args.older_than is None and args.max_bytes is None:
        print("foldwise: error: give --older-than and/or --max-bytes (or use `foldwise cache "
              "clear`)", file=sys.stderr)
        return 2
    removed = _open_cache(args).evict(older_than=args.older_than, max_bytes=args.max_bytes,
                                      include_pinned=args.include_pinned)
    print(f"evicted {removed} entries")
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    cache = _open_cache(args)
    if not args.yes:
        print(f"this would delete all {cache.stats().runs} stored runs in {cache.directory}; "
              "run again with --yes to do it", file=sys.stderr)
        return 1
    print(f"removed {cache.clear(include_pinned=args.include_pinned)} entries from "
          f"{cache.directory}")
    return 0


def _add_cache_commands(commands: Any) -> None:  # the object add_subparsers returns
    location = argparse.ArgumentParser(add_help=False)
    location.add_argument("--dir", default=argparse.SUPPRESS, metavar="DIR",
                          help="foldwise directory (default: $FOLDWISE_DIR or ./.foldwise)")
    location.add_argument("--index", default=argparse.SUPPRESS, metavar="URL",
                          help=_INDEX_HELP)
    location.add_argument("--artifacts", default=argparse.SUPPRESS, metavar="URL",
                          help=_ARTIFACTS_HELP)
    group = commands.add_parser("cache", parents=[location],
                                help="inspect and maintain the backtest cache")

    def group_help(_: argparse.Namespace) -> int:
        group.print_help()
        return 2

    # (not set_defaults(dir=...): it would change the --dir action shared with every action)
    group.set_defaults(handler=group_help)
    actions = group.add_subparsers(dest="action", metavar="ACTION")

    stats = actions.add_parser("stats", parents=[location],
                               help="runs stored, bytes on disk, per-strategy counts")
    stats.set_defaults(handler=_cache_stats)

    runs = actions.add_parser("runs", parents=[location], help="table of stored runs")
    runs.add_argument("--strategy", help="only runs of this strategy name")
    runs.add_argument("--kind", choices=["full", "slice", "all"], default="full",
                      help="full runs (default), slices of folds, or all")
    runs.add_argument("--sort", metavar="COLUMN", help="sort by a metric or column")
    runs.add_argument("--ascending", action="store_true", help="sort smallest first")
    runs.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    runs.set_defaults(handler=_cache_runs)

    verify = actions.add_parser(
        "verify", parents=[location],
        help="check every entry's files; report foreign files (never opened)")
    verify.add_argument("--repair", action="store_true",
                        help="drop damaged entries, delete stale leftovers")
    verify.add_argument("--grace", type=_duration, default=600.0, metavar="DURATION",
                        help="keep leftovers younger than this (default 600 s)")
    verify.set_defaults(handler=_cache_verify)

    evict = actions.add_parser("evict", parents=[location],
                               help="remove least recently used entries")
    evict.add_argument("--older-than", type=_duration, metavar="DURATION",
                       help="entries not used for this long (e.g. 30d, 12h, seconds)")
    evict.add_argument("--max-bytes", type=_size, metavar="SIZE",
                       help="then shrink artifacts to at most this size (e.g. 2G, 500M)")
    evict.add_argument("--include-pinned", action="store_true",
                       help="also remove runs that stored studies reference (they are "
                            "re-created when a study needs them)")
    evict.set_defaults(handler=_cache_evict)

    clear = actions.add_parser("clear", parents=[location], help="remove every entry")
    clear.add_argument("--yes", action="store_true", help="really delete")
    clear.add_argument("--include-pinned", action="store_true",
                       help="also remove runs that stored studies reference")
    clear.set_defaults(handler=_cache_clear)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foldwise",
        description="Walk-forward parameter optimization of trading strategies.")
    parser.add_argument("--version", action="version", version=f"foldwise {foldwise.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", help="foldwise directory (default ./.foldwise or $FOLDWISE_DIR)")
    where.add_argument("--storage", help="Optuna storage URL (default: the journal file in "
                                         "--dir), e.g. postgresql+psycopg://user@host/db")
    where.add_argument("--index", metavar="URL", help=_INDEX_HELP)
    where.add_argument("--artifacts", metavar="URL", help=_ARTIFACTS_HELP)
    demo = commands.add_parser(
        "demo", parents=[where],
        help="walk-forward optimization of an SMA crossover on the bundled GOOG data")
    demo.add_argument("--trials", type=int, default=40, help="trials per fold (default 40)")
    demo.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    demo.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    demo.add_argument("--study", default="demo", help="study name (default 'demo')")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--commission-bps", type=float, default=1.0,
                      help="commission in bps of traded notional (default 1)")
    demo.add_argument("--slippage-bps", type=float, default=2.0,
                      help="slippage in bps of traded notional (default 2)")
    demo.add_argument("-o", "--output", metavar="FILE",
                      help="the HTML report (default: <foldwise dir>/report-<study>.html)")
    demo.set_defaults(handler=_demo)
    run = commands.add_parser(
        "run", parents=[where],
        help="run the study a config file describes (TOML; see examples/study.toml)")
    run.add_argument("config", help="the config file (study.toml)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)
    resume = commands.add_parser(
        "resume", parents=[where],
        help="run a study started by `foldwise run` again from the config stored with it")
    resume.add_argument("study", help="study name")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    resume.set_defaults(handler=_resume)
    show = commands.add_parser("show", parents=[where],
                               help="print the report of a stored walk-forward study")
    show.add_argument("study", help="study name")
    show.add_argument("--no-overfitting", action="store_true",
                      help="skip PBO (it reads the returns of every parameter set)")
    show.set_defaults(handler=_show)
    report = commands.add_parser("report", parents=[where],
                                 help="write the HTML report of a stored study")
    report.add_argument("study", help="study name")
    report.add_argument("-o", "--output", metavar="FILE",
                        help="where to write it (default: <foldwise dir>/report-<study>.html)")
    report.add_argument("--no-overfitting", action="store_true",
                        help="skip PBO (it reads the returns of every parameter set)")
    report.set_defaults(handler=_report)
    studies = commands.add_parser(
        "studies", parents=[where],
        help="list the stored studies with their progress (trials per fold, complete or not)")
    studies.set_defaults(handler=_studies)
    delete = commands.add_parser("delete", parents=[where],
                                 help="delete a stored study (its cached backtests are kept)")
    delete.add_argument("study", help="study name")
    delete.add_argument("--yes", action="store_true", help="really delete")
    delete.set_defaults(handler=_delete)
    repair = commands.add_parser(
        "repair", parents=[where],
        help="mend a study journal with damaged lines (keeps a backup; lost trials re-run)")
    repair.add_argument("study", help="study name (the whole journal is repaired; its lost "
                                      "trials are marked)")
    repair.add_argument("--dry-run", action="store_true",
                        help="only report what would be dropped and lost")
    repair.set_defaults(handler=_repair)
    _add_cache_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``foldwise`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    import optuna

    # Optuna announces every study it creates; the command line keeps its own output clear
    # (the library itself never touches logging configuration).
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.WARNING)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except foldwise.FoldwiseError as exc:
        print(f"foldwise: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Every finished trial is already stored and the running one is marked interrupted
        # (it runs again); a traceback would only hide that.
        print("foldwise: interrupted; the finished trials are stored. Run the same command "
              "to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
