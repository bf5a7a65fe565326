"""``foldwise run`` config files, the config stored with a study, and the commands around
them (resume, studies, report, delete): parsing and its messages in-process, the whole
cycle through real ``python -m foldwise.cli`` processes (one killed with SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import optuna
import pandas as pd
import pytest

import foldwise
from foldwise.backtest import BacktestSettings, Costs
from foldwise.cli import main
from foldwise.cli_config import (
    CONFIG_VERSION,
    CV_AGGREGATES,
    SAMPLERS,
    RunConfig,
    import_strategy,
    load_config,
    parse_config,
)
from foldwise.errors import ConfigError, OptimizationError
from foldwise.records import RUN_CONFIG_ATTR, read_run_config, trial_budget, write_run_config
from foldwise.space import Categorical, Fixed, Float, Int
from foldwise.splits import CombinatorialPurgedKFold, PurgedKFold, WalkForward
from foldwise.storage import open_storage, parse_storage

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "study.toml"

# The smallest useful study: GOOG from 2009 (about 1050 bars), three folds of 250 bars.
SMALL = """\
study = "small"
strategy = "foldwise.examples:sma_crossover"

[data]
bundled = "goog"
start = 2009-01-01

[splitter]
type = "WalkForward"
train = 250
test = 250

[space]
fast = { int = [5, 30] }
slow = { int = [35, 120] }

[optimize]
constraints = ["fast < slow"]
n_trials = 3
seed = 0
top_k = 2
"""


def _parse(text: str, folder: Path | str = "/project") -> RunConfig:
    return parse_config(tomllib.loads(textwrap.dedent(text)), folder=folder,
                        origin="study.toml", file=f"{folder}/study.toml")


def _with(extra: str, base: str = SMALL) -> str:
    """``base`` with the ``extra`` lines (``[section] key = value``, or ``key = value`` at
    the top level) set in the sections they name, replacing a key already there."""
    lines = base.splitlines()
    for item in textwrap.dedent(extra).strip().splitlines():
        if item.startswith("["):
            section, _, line = item.partition("] ")
            header = section + "]"
            if header not in lines:
                lines += ["", header]
            start = lines.index(header) + 1
        else:
            line, start = item, 0
        end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")),
                   len(lines))
        key = line.split("=")[0].strip()
        same = [i for i in range(start, end) if lines[i].split("=")[0].strip() == key]
        if same:
            lines[same[0]] = line
        else:
            lines.insert(start, line)
    return "\n".join(lines) + "\n"


def _error(text: str, folder: Path | str = "/project") -> str:
    with pytest.raises(ConfigError) as info:
        _parse(text, folder)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- parsing: every section -----------------------------------------------------------------


def test_the_example_config_parses_into_typed_values():
    config = load_config(EXAMPLE)
    assert config.study == "goog-sma"
    assert config.strategy == "foldwise.examples:sma_crossover"
    assert (config.data.bundled, config.data.start, config.data.end) == (
        "goog", "2005-01-01", "2012-12-31")
    assert config.splitter.type == "WalkForward"
    assert config.splitter.options == {"train": "2Y", "test": "6M"}
    assert config.space == {"fast": Int(5, 50), "slow": Int(20, 200, step=5),
                            "short": Categorical([False, True])}
    assert config.constraints == ("fast < slow",)
    assert (config.metric, config.n_trials, config.seed, config.top_k) == ("sharpe", 12, 0, 3)
    assert config.settings == BacktestSettings(costs=Costs(commission_bps=1, slippage_bps=2))
    assert config.folder == str(EXAMPLE.parent) and config.file == str(EXAMPLE)
    assert (config.dir, config.storage) == (None, None)


def test_every_key_of_every_section(tmp_path):
    config = _parse("""
        study = "full"
        strategy = "foldwise.examples:sma_crossover"
        dir = "runs"
        storage = "journal:runs/studies.journal"

        [data]
        path = "data/prices.csv.gz"
        format = "csv"
        layout = "long"
        field = "px"
        asset = "X"
        price_fields = ["px", "open"]
        start = "2010-01-01"
        end = 2011-06-30

        [splitter]
        type = "purged_k_fold"
        n_splits = 4
        purge = 5
        embargo = 0.01

        [space]
        fast = { int = [5, 50] }

        [optimize]
        constraints = "fast > 6"
        metric = "sortino"
        direction = "minimize"
        sampler = "random"
        n_trials = 7
        seed = 3
        top_k = 2
        mode = "cv"
        timeout = 60
        n_jobs = -1
        cv_aggregate = "worst"
        warmup = 20
        check_lookahead = false

        [backtest]
        commission_bps = 1.5
        slippage_bps = 2
        delay = 1
        price_field = "open"
        missing = "raise"
        periods_per_year = 365
        """, tmp_path)
    assert config.study == "full"
    assert config.dir == str(tmp_path / "runs")
    assert config.storage == f"journal:{tmp_path / 'runs' / 'studies.journal'}"
    assert config.location == (config.storage, config.dir)
    data = config.data
    assert data.path == str(tmp_path / "data" / "prices.csv.gz")
    assert (data.format, data.layout, data.field, data.asset, data.price_fields) == (
        "csv", "long", "px", "X", ("px", "open"))
    assert (data.start, data.end) == ("2010-01-01", "2011-06-30")
    assert config.splitter.type == "PurgedKFold"
    assert config.splitter.build() == PurgedKFold(4, purge=5, embargo=0.01)
    assert config.constraints == ("fast > 6",)
    assert (config.metric, config.direction, config.sampler, config.n_trials, config.seed,
            config.top_k, config.mode, config.timeout, config.n_jobs, config.cv_aggregate,
            config.warmup, config.check_lookahead) == (
        "sortino", "minimize", "random", 7, 3, 2, "cv", 60.0, -1, "worst", 20, False)
    assert config.settings == BacktestSettings(
        costs=Costs(commission_bps=1.5, slippage_bps=2), delay=1, price_field="open",
        missing="raise", periods_per_year=365)


def test_defaults_and_the_study_named_after_the_file(tmp_path):
    path = tmp_path / "my-study.toml"
    path.write_text(SMALL.replace('study = "small"\n', ""))
    config = load_config(path)
    assert config.study == "my-study"
    bare = _parse(SMALL.split("[optimize]")[0])
    assert (bare.metric, bare.direction, bare.sampler, bare.n_trials, bare.seed, bare.top_k,
            bare.mode, bare.timeout, bare.n_jobs, bare.cv_aggregate, bare.warmup,
            bare.check_lookahead, bare.constraints) == (
        "sharpe", None, "tpe", 100, None, 5, "walk_forward", None, 1, "mean", None, True, ())
    assert bare.settings == BacktestSettings()


@pytest.mark.parametrize(("splitter", "expected"), [
    ('type = "WalkForward"\ntrain = "2Y"\ntest = "6M"\nanchored = true\nstep = 100',
     WalkForward("2Y", "6M", anchored=True, step=100)),
    ('type = "PurgedKFold"', PurgedKFold()),
    ('type = "CombinatorialPurgedKFold"\nn_groups = 5\nn_test_groups = 2\npurge = 3',
     CombinatorialPurgedKFold(5, 2, purge=3)),
    ('type = "cpcv"', CombinatorialPurgedKFold()),
])
def test_the_three_splitters(splitter, expected):
    text = SMALL.replace('type = "WalkForward"\ntrain = 250\ntest = 250', splitter)
    assert repr(_parse(text).splitter.build()) == repr(expected)


@pytest.mark.parametrize(("spec", "param"), [
    ("{ int = [5, 50] }", Int(5, 50)),
    ("{ int = [20, 200], step = 5 }", Int(20, 200, step=5)),
    ("{ int = [1, 1000], log = true }", Int(1, 1000, log=True)),
    ("{ float = [0.5, 2] }", Float(0.5, 2.0)),
    ("{ float = [1e-4, 1e-1], log = true }", Float(1e-4, 1e-1, log=True)),
    ("{ float = [0, 1], step = 0.25 }", Float(0.0, 1.0, step=0.25)),
    ('{ categorical = ["a", "b"] }', Categorical(["a", "b"])),
    ("{ categorical = [false, true] }", Categorical([False, True])),
    ("1", Fixed(1)),
    ("2.5", Fixed(2.5)),
    ('"v2"', Fixed("v2")),
    ("true", Fixed(True)),
    ("{ fixed = [1, 2] }", Fixed([1, 2])),
    ("{ fixed = { a = 1 } }", Fixed({"a": 1})),
])
def test_every_space_form(spec, param):
    config = _parse(SMALL.replace("slow = { int = [35, 120] }",
                                  f"slow = {{ int = [35, 120] }}\nextra = {spec}"))
    assert config.space["extra"] == param
    assert type(config.space["extra"]) is type(param)


def test_the_stored_json_reads_back_to_the_same_config(tmp_path):
    config = load_config(EXAMPLE).with_location(str(tmp_path / "home"), None)
    stored = json.loads(json.dumps(config.to_json()))  # as the storage keeps it
    assert stored["version"] == CONFIG_VERSION
    assert stored["space"]["slow"] == {"int": [20, 200], "step": 5, "log": False}
    assert stored["backtest"]["commission_bps"] == 1.0
    assert RunConfig.from_json(stored) == config
    full = _parse(_with("""
        [space] lr = { float = [1e-4, 1e-1], log = true }
        [space] kind = { categorical = ["a", "b"] }
        [space] lag = 1
        [space] table = { fixed = { a = [1, 2] } }
        [backtest] delay = 2
        """), tmp_path)
    assert RunConfig.from_json(json.loads(json.dumps(full.to_json()))) == full


def test_a_stored_config_that_cannot_be_read_says_so():
    stored = load_config(EXAMPLE).to_json()
    with pytest.raises(ConfigError, match=r"the stored config: it has version 99, newer than "
                       r"this foldwise reads \(1\); upgrade foldwise"):
        RunConfig.from_json({**stored, "version": 99})
    with pytest.raises(ConfigError, match="it has no valid version"):
        RunConfig.from_json({k: v for k, v in stored.items() if k != "version"})
    with pytest.raises(ConfigError, match="it does not say which folder"):
        RunConfig.from_json({k: v for k, v in stored.items() if k != "origin"})
    with pytest.raises(ConfigError, match="unknown key 'version' at the top level"):
        parse_config(stored)  # a file is not a stored config


def test_the_command_line_location_replaces_the_files(tmp_path):
    config = _parse(_with('dir = "here"\nstorage = "sqlite:///db/studies.db"'), tmp_path)
    assert config.storage == f"sqlite:///{tmp_path / 'db' / 'studies.db'}"
    assert config.location == (config.storage, str(tmp_path / "here"))
    moved = config.with_location(str(tmp_path / "there"), None)  # --dir: the journal there
    assert moved.location == (f"journal:{tmp_path / 'there' / 'studies.journal'}",
                              str(tmp_path / "there"))
    assert config.with_location(None, "memory").location == ("memory", str(tmp_path / "here"))
    assert config.with_location("d", "memory").location == ("memory", str(Path("d").absolute()))
    assert config.with_location(None, None) is config
    assert _parse(SMALL, tmp_path).location == (None, None)


def test_the_lists_of_names_match_what_optimize_accepts():
    from foldwise.optimizer._objective import CV_AGGREGATES as ACCEPTED
    from foldwise.optimizer._samplers import make_sampler

    for name in SAMPLERS:
        assert isinstance(make_sampler(name, 0), optuna.samplers.BaseSampler)
    assert sorted(CV_AGGREGATES) == sorted(ACCEPTED)


# --- parsing: messages ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('optimise = 1', "study.toml: unknown key 'optimise' at the top level. Did you mean "
                     "'optimize'? The keys at the top level are: study, strategy, dir, "
                     "storage, data, splitter, space, optimize, backtest."),
    ("[optimize] n_trial = 5", "study.toml: unknown key 'n_trial' in [optimize]. Did you mean "
                               "'n_trials'?"),
    ("[data] bundeld = 1", "unknown key 'bundeld' in [data]. Did you mean 'bundled'?"),
    ("[backtest] comission_bps = 1", "unknown key 'comission_bps' in [backtest]. Did you "
                                     "mean 'commission_bps'?"),
    ("[splitter] anchord = true", "unknown key 'anchord' in [splitter]. Did you mean "
                                  "'anchored'? The keys in [splitter] are: type, train, test, "
                                  "step, anchored, purge, embargo, min_train, partial_test."),
    ("[space] x = { integer = [1, 2] }", "[space] x = { integer = [1, 2] }: has the key(s) "
                                         "'integer'. Did you mean 'int'? Write { int = [low, "
                                         "high] }"),
    ("[space] x = { int = [1, 9], stpe = 2 }", "[space] x = { int = [1, 9], stpe = 2 }: "
                                               "unknown key 'stpe' for an int parameter. Did "
                                               "you mean 'step'? It takes step, log."),
    ('[optimize] metric = "sharp"', '[optimize] metric = "sharp": unknown metric. Did you mean '
                                    "'sharpe'? The metrics are: sharpe,"),
    ('[optimize] sampler = "tp"', '[optimize] sampler = "tp": must be one of "tpe", "optuna-tpe", "random", '
                                  '"qmc", "cmaes", "gp", "nsga2". Did you mean \'tpe\'?'),
])
def test_unknown_names_get_did_you_mean(text, expected):
    assert expected in _error(_with(text))


def test_unknown_names_that_replace_a_value_get_did_you_mean():
    assert ('[data] bundled = "gog": must be one of "goog", "sp500". Did you mean \'goog\'?'
            in _error(SMALL.replace('bundled = "goog"', 'bundled = "gog"')))
    assert ('[splitter] type = "WalkFoward": must be one of "WalkForward", "PurgedKFold", '
            '"CombinatorialPurgedKFold". Did you mean \'WalkForward\'?'
            in _error(SMALL.replace('type = "WalkForward"', 'type = "WalkFoward"')))


@pytest.mark.parametrize(("extra", "expected"), [
    ("[optimize] n_trials = 0", "study.toml: [optimize] n_trials = 0: must be an integer >= 1 "
                                "(finished trials per fold)."),
    ('[optimize] n_trials = "10"', '[optimize] n_trials = "10": must be an integer >= 1'),
    ("[optimize] n_trials = 2.5", "[optimize] n_trials = 2.5: must be an integer >= 1"),
    ("[optimize] seed = -1", "[optimize] seed = -1: must be an integer >= 0 (it seeds each "
                             "fold's sampler)."),
    ("[optimize] top_k = true", "[optimize] top_k = true: must be an integer >= 1"),
    ("[optimize] timeout = 0", "[optimize] timeout = 0: must be a finite number > 0 (seconds)."),
    ("[optimize] n_jobs = 0", "[optimize] n_jobs = 0: must be an integer >= 1 (or -1) (worker "
                              "processes; -1: all cores)."),
    ('[optimize] mode = "cross"', '[optimize] mode = "cross": must be one of "walk_forward", '
                                  '"cv".'),
    ('[optimize] direction = "up"', '[optimize] direction = "up": must be one of "maximize", '
                                    '"minimize".'),
    ('[optimize] cv_aggregate = "max"', '[optimize] cv_aggregate = "max": must be one of '
                                        '"mean", "median", "worst".'),
    ("[optimize] warmup = -5", "[optimize] warmup = -5: must be an integer >= 0 (bars)."),
    ('[optimize] check_lookahead = "no"', '[optimize] check_lookahead = "no": must be true or '
                                          'false.'),
    ("[optimize] constraints = [1]", "[optimize] constraints = [1]: must be a list of "
                                     'expressions, e.g. ["fast < slow"].'),
    ('[optimize] constraints = ["fast <"]', "[optimize] constraints: constraint 'fast <' is "
                                           "not a valid expression"),
    ('[optimize] constraints = ["fast < slowest"]', "[optimize] constraints: constraint 'fast "
                                                    "< slowest' names 'slowest', which is not "
                                                    "a parameter of the search space (fast, "
                                                    "slow)."),
    ("[backtest] commission_bps = -1", "[backtest] commission_bps = -1: must be a finite "
                                       "number >= 0 (basis points)."),
    ("[backtest] delay = 1.5", "[backtest] delay = 1.5: must be an integer >= 0 (bars)."),
    ('[backtest] missing = "skip"', '[backtest] missing = "skip": must be one of "zero", '
                                    '"raise".'),
    ("[backtest] periods_per_year = 0", "[backtest] periods_per_year = 0: must be a finite "
                                        "number > 0 (252 for daily bars)."),
    ('[backtest] price_field = ""', '[backtest] price_field = "": must be a non-empty string '
                                    '(e.g. price_field = "close").'),
    ("study = 5", 'study = 5: must be a non-empty string (e.g. study = "goog-sma").'),
    ('dir = 1', 'dir = 1: must be a non-empty string (e.g. dir = ".foldwise").'),
])
def test_bad_values_name_the_key_the_value_and_the_fix(extra, expected):
    assert expected in _error(_with(extra))


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('"foldwise.examples:sma_crossover"', '"sma_crossover"',
     'strategy = "sma_crossover": must be "module:function", e.g. '
     '"foldwise.examples:sma_crossover".'),
    ('strategy = "foldwise.examples:sma_crossover"\n', "",
     'no strategy = "module:function" at the top level; add one'),
    ('bundled = "goog"', 'bundled = "goog"\npath = "x.csv"',
     '[data] needs exactly one of bundled = "goog" (or "sp500") and path = "prices.csv" (a CSV '
     "or Parquet file); got both."),
    ('bundled = "goog"', "", "got neither."),
    ('bundled = "goog"', 'bundled = "goog"\nlayout = "wide"',
     '[data] layout = "wide": applies to a file (path = ...), not to bundled = "goog"; remove '
     "it."),
    ("start = 2009-01-01", 'start = "yesterday"',
     '[data] start = "yesterday": must be a date, e.g. 2010-01-01'),
    ("start = 2009-01-01", "start = 2009-01-01\nend = 2008-01-01",
     "[data] start = 2009-01-01 is after end = 2008-01-01; swap them."),
    ('bundled = "goog"', 'path = "x.csv"\nlayout = "tall"',
     '[data] layout = "tall": must be one of "auto", "wide", "long", "ohlcv".'),
    ('bundled = "goog"', 'path = "x.csv"\nprice_fields = "close"',
     '[data] price_fields = "close": must be a list of field names'),
    ('type = "WalkForward"\n', "", '[splitter] needs type = "WalkForward"'),
    ("test = 250\n", "", "[splitter] WalkForward needs 'test' (e.g. train = \"2Y\""),
    ("test = 250", 'test = "6 moons"', "study.toml: [splitter] "),
    ("test = 250", "test = [250]", '[splitter] test = [250]: must be a number, a string'),
    ("fast = { int = [5, 30] }", "fast = [5, 30]",
     "[space] fast = [5, 30]: a bare list is ambiguous; write { int = [low, high] }"),
    ("fast = { int = [5, 30] }", "fast = { int = [5.5, 30] }",
     "[space] fast = { int = [5.5, 30] }: int takes [low, high] of two integers, e.g. "
     "{ int = [5, 50] }."),
    ("fast = { int = [5, 30] }", "fast = { int = [30, 5] }",
     "[space] fast = { int = [30, 5] }: Int(low=30, high=5): low must be <= high."),
    ("fast = { int = [5, 30] }", "fast = { float = [0, 1], log = true }",
     "[space] fast = { float = [0, 1], log = true }: Float(log=True) needs no step and low > 0"),
    ("fast = { int = [5, 30] }", 'fast = { int = [5, 30], log = "yes" }',
     "log must be true or false."),
    ("fast = { int = [5, 30] }", "fast = { int = [5, 30], step = 0 }",
     "step must be an integer > 0."),
    ("fast = { int = [5, 30] }", "fast = { categorical = [] }",
     "categorical takes a non-empty list of strings, numbers or true/false"),
    ("fast = { int = [5, 30] }", "fast = { int = [5, 30], categorical = [1] }",
     "has both int and categorical. Write { int = [low, high] }"),
    ("fast = { int = [5, 30] }", "fast = 2020-01-01",
     "[space] fast = 2020-01-01: a fixed value must be a string, a number or true/false "
     "(write a date as a string)."),
    ("[space]\nfast = { int = [5, 30] }\nslow = { int = [35, 120] }", "[space]",
     "[space] is empty; give at least one parameter"),
    ("[space]\nfast = { int = [5, 30] }\nslow = { int = [35, 120] }", "",
     "there is no [space] section; add one"),
    ('[data]\nbundled = "goog"\nstart = 2009-01-01', 'data = "goog"',
     'data = "goog": must be a section [data] (a table of keys), not a value.'),
    ('study = "small"', 'study = "a/fold-01"', "must not contain '/fold-'"),
])
def test_bad_sections_name_the_key_the_value_and_the_fix(old, new, expected):
    assert old in SMALL
    assert expected in _error(SMALL.replace(old, new, 1))


def test_a_file_that_cannot_be_read_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: no such config file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r": is a folder, not a config file"):
        load_config(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("study = \n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: Invalid value"):
        load_config(bad)


# --- the strategy and the data --------------------------------------------------------------


def test_a_strategy_is_imported_or_the_reason_is_said(tmp_path):
    assert import_strategy("foldwise.examples:sma_crossover").name == "sma_crossover"
    with pytest.raises(ConfigError, match=r"cannot import module 'no_such_module_x' \(no "
                       r"module named 'no_such_module_x'\)\. Install it, or put "
                       r"no_such_module_x.py next to the config file"):
        import_strategy("no_such_module_x:f", tmp_path)
    with pytest.raises(ConfigError, match=r"'foldwise.examples' has no 'sma_crosover'\. Did "
                       r"you mean 'sma_crossover'\?"):
        import_strategy("foldwise.examples:sma_crosover")
    with pytest.raises(ConfigError, match=r"'__version__' is a str, not a function"):
        import_strategy("foldwise:__version__")
    (tmp_path / "broken_strategies_cfg.py").write_text("raise RuntimeError('not ready')\n")
    with pytest.raises(ConfigError, match=r"importing module 'broken_strategies_cfg' raised "
                       r"RuntimeError: not ready\. Fix the module\."):
        import_strategy("broken_strategies_cfg:f", tmp_path)


def test_a_strategy_module_next_to_the_config_file_is_imported(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    (tmp_path / "next_to_config_strategies.py").write_text(textwrap.dedent("""
        import pandas as pd

        def always_long(data, lag=1):
            return pd.DataFrame(1.0, index=data.index, columns=data.assets)
        """))
    config = _parse(SMALL.replace("foldwise.examples:sma_crossover",
                                  "next_to_config_strategies:always_long"), tmp_path)
    assert config.load_strategy().name == "always_long"
    assert str(tmp_path) in sys.path  # and for worker processes:
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)


def test_data_from_a_file_relative_to_the_config(tmp_path):
    goog = foldwise.datasets.load_goog(as_frame=True)
    (tmp_path / "data").mkdir()
    goog.to_csv(tmp_path / "data" / "goog.csv")
    goog.to_parquet(tmp_path / "data" / "goog.parquet")
    for name in ("goog.csv", "goog.parquet"):
        text = SMALL.replace('bundled = "goog"', f'path = "data/{name}"\nasset = "GOOG"')
        data = _parse(text, tmp_path).data.load()
        expected = foldwise.datasets.load_goog().slice("2009-01-01")
        assert data.content_hash == expected.content_hash
    missing = _parse(SMALL.replace('bundled = "goog"', 'path = "data/none.csv"'), tmp_path)
    with pytest.raises(ConfigError, match=r'\[data\] path = ".*none.csv": no such file\. Check '
                       r"the path \(a relative path is read from the config file's folder\)"):
        missing.data.load()
    empty = _parse(SMALL.replace("start = 2009-01-01", "start = 2030-01-01"))
    with pytest.raises(ConfigError, match=r"\[data\] start/end: no bar between 2030-01-01"):
        empty.data.load()
    (tmp_path / "data" / "junk.parquet").write_text("not parquet")
    junk = _parse(SMALL.replace('bundled = "goog"', 'path = "data/junk.parquet"'), tmp_path)
    with pytest.raises(ConfigError, match=r"cannot read it as PARQUET \(.*\)\. Check the file"):
        junk.data.load()


# --- the config stored with the study -------------------------------------------------------


def test_the_run_config_record_round_trips_and_is_versioned():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="s", storage=storage)
    assert read_run_config(study) is None
    write_run_config(study, {"version": 1, "study": "s"})
    assert study.user_attrs[RUN_CONFIG_ATTR]["format"] >= 2
    assert read_run_config(study) == {"version": 1, "study": "s"}
    study.set_user_attr(RUN_CONFIG_ATTR, {"format": 99, "config": {}})
    with pytest.raises(OptimizationError, match="format 99, newer than this foldwise"):
        read_run_config(study)
    study.set_user_attr(RUN_CONFIG_ATTR, "junk")
    with pytest.raises(OptimizationError, match="is not one foldwise wrote"):
        read_run_config(study)


def test_optimize_stores_the_run_config_and_replaces_it_when_it_changes(tmp_path):
    config = _parse(SMALL).with_location(str(tmp_path), None)
    arguments = config.optimize_arguments()
    result = foldwise.optimize(**arguments, show_progress=False)
    assert result.complete
    storage = open_storage(parse_storage(config.location[0]), read_only=True)
    stored = read_run_config(optuna.load_study(study_name="small", storage=storage))
    assert stored == json.loads(json.dumps(config.to_json()))
    more = config.to_json() | {"optimize": config.to_json()["optimize"] | {"n_trials": 4}}
    foldwise.optimize(**arguments | {"n_trials": 4, "run_config": more}, show_progress=False)
    storage = open_storage(parse_storage(config.location[0]), read_only=True)
    assert read_run_config(optuna.load_study(study_name="small", storage=storage)) == more
    with pytest.raises(OptimizationError, match="run_config cannot be stored as JSON"):
        foldwise.optimize(**arguments | {"run_config": {"x": object()}}, show_progress=False)


# --- the commands, in this process ----------------------------------------------------------


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "conf" / "small.toml"
    path.parent.mkdir()
    path.write_text(SMALL)
    return path


def test_run_resume_studies_delete_in_process(small, tmp_path, capsys):
    where = ["--dir", str(tmp_path / "home")]
    assert main(["run", str(small), "--quiet", *where]) == 0
    out = capsys.readouterr().out
    assert out.startswith("foldwise ") and "running study 'small'" in out
    assert "3 fold(s) of WalkForward" in out and "verdict:" in out
    assert f"stored in {tmp_path / 'home' / 'studies.journal'} (study 'small', with its " \
           f"config); `foldwise show small --dir {tmp_path / 'home'}`" in out

    assert main(["resume", "small", "--quiet", *where]) == 0  # nothing left to run
    assert "resuming study 'small'" in capsys.readouterr().out

    foldwise.optimize(foldwise.examples.sma_crossover, foldwise.datasets.load_goog(),
                      {"fast": (5, 30), "slow": (35, 120)}, WalkForward(500, 500),
                      n_trials=2, study="from-python", seed=0, show_progress=False,
                      storage=f"journal:{tmp_path / 'home' / 'studies.journal'}",
                      cache=tmp_path / "home")
    assert main(["studies", *where]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["study", "folds", "trials/fold", "status", "strategy", "metric",
                                "first", "trial", "last", "trial", "started", "from"]
    python_row, config_row = lines[1].split(), lines[2].split()
    assert python_row[:6] == ["from-python", "3", "2/2", "complete", "sma_crossover",
                              "sharpe"]
    assert python_row[-1] == "python"
    assert config_row[:6] == ["small", "3", "3/3", "complete", "sma_crossover", "sharpe"]
    assert config_row[-1] == "config"
    assert lines[-1] == f"2 studies in {tmp_path / 'home' / 'studies.journal'}"

    assert main(["resume", "from-python", *where]) == 1
    assert capsys.readouterr().err == (
        f"foldwise: error: study 'from-python' in {tmp_path / 'home' / 'studies.journal'} was "
        "not started from a config file (it was started from Python, or by foldwise demo): "
        "resume it by calling optimize again with the same arguments (the demo: by running it "
        "again).\n")

    assert main(["delete", "small", *where]) == 1
    assert capsys.readouterr().err.startswith(
        "this would delete study 'small' (3 folds, ")
    assert "small" in foldwise.list_studies(f"journal:{tmp_path / 'home' / 'studies.journal'}")
    assert main(["delete", "small", "--yes", *where]) == 0
    assert "deleted study 'small' (4 Optuna studies)" in capsys.readouterr().out
    assert foldwise.list_studies(f"journal:{tmp_path / 'home' / 'studies.journal'}") == [
        "from-python"]


def test_studies_shows_an_unfinished_study_and_its_fold_counts(small, tmp_path, capsys):
    config = load_config(small).with_location(str(tmp_path / "home"), None)
    arguments = config.optimize_arguments()
    foldwise.optimize(**arguments, show_progress=False)
    # a larger budget stored, as a later call that was interrupted leaves it
    more = config.to_json() | {"optimize": config.to_json()["optimize"] | {"n_trials": 5}}
    foldwise.optimize(**arguments | {"n_trials": 5, "run_config": more, "timeout": 1e-9},
                      show_progress=False)
    assert main(["studies", "--dir", str(tmp_path / "home")]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:3] == ["small", "3", "3..4/5"] or row[:3] == ["small", "3", "3/5"]
    assert row[3:6] == ["incomplete", "(3", "folds"]


def test_errors_are_one_line_with_a_nonzero_status(small, tmp_path, capsys):
    where = ["--dir", str(tmp_path / "home")]
    cases = [
        (["run", str(tmp_path / "none.toml")], f"{tmp_path / 'none.toml'}: no such config "
                                                "file."),
        (["resume", "nope", *where], "no study storage at "),
        (["studies", *where], "no study storage at "),
        (["delete", "nope", *where], "no study storage at "),
        (["report", "nope", *where], "no study storage at "),
    ]
    small.write_text(_with("[optimize] n_trial = 5"))
    cases.append((["run", str(small), *where], "unknown key 'n_trial' in [optimize]. Did you "
                                               "mean 'n_trials'?"))
    for argv, expected in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("foldwise: error: ") and expected in err, (argv, err)
        assert err.count("\n") == 1


# --- the HTML report ------------------------------------------------------------------------

def test_report_and_demo_write_the_html_report(small, tmp_path, capsys):
    where = ["--dir", str(tmp_path / "home")]
    assert main(["run", str(small), "--quiet", *where]) == 0
    capsys.readouterr()
    out = tmp_path / "out" / "small.html"
    assert main(["report", "small", "-o", str(out), *where]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote the report of study 'small': {out} (")
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    assert main(["report", "small", *where]) == 0  # default: next to the studies
    assert (tmp_path / "home" / "report-small.html").is_file()
    capsys.readouterr()
    assert main(["demo", "--trials", "2", "--quiet", *where]) == 0
    assert f"HTML report: {tmp_path / 'home' / 'report-demo.html'} (" in capsys.readouterr().out
    assert (tmp_path / "home" / "report-demo.html").is_file()


# --- real processes -------------------------------------------------------------------------


def _cli(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "foldwise.cli", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"FOLDWISE_DIR": str(cwd / "default-home")})


def _finished(journal: Path) -> dict[str, int]:
    """Per fold study, the trials that used its budget (as the optimizer counts them)."""
    if not journal.exists():
        return {}
    storage = open_storage(parse_storage(f"journal:{journal}"), read_only=True)
    return {summary.study_name: sum(trial_budget(t) for t in optuna.load_study(
        study_name=summary.study_name, storage=storage).get_trials(deepcopy=False))
        for summary in optuna.get_all_study_summaries(storage)
        if "/fold-" in summary.study_name}


@pytest.mark.slow  # three fresh interpreters, one killed mid-study (about 20 s)
def test_a_killed_run_is_resumed_from_the_stored_config_without_the_file(tmp_path):
    n_trials = 60  # 180 trials: seconds of work, so the kill lands mid-study
    config = tmp_path / "conf" / "kill.toml"
    config.parent.mkdir()
    config.write_text(SMALL.replace('study = "small"', 'study = "kill"')
                      .replace("n_trials = 3", f"n_trials = {n_trials}"))
    home = tmp_path / "home"
    journal = home / "studies.journal"
    process = subprocess.Popen(
        [sys.executable, "-m", "foldwise.cli", "run", str(config), "--dir", str(home),
         "--quiet"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=os.environ | {"FOLDWISE_DIR": str(tmp_path / "default-home")})
    deadline = time.monotonic() + 60
    try:
        while sum(_finished(journal).values()) < 5 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    before = _finished(journal)
    assert 5 <= sum(before.values()) < 3 * n_trials, before

    config.unlink()  # resume needs only the study
    resumed = _cli("resume", "kill", "--dir", str(home), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming study 'kill'" in resumed.stdout and "verdict:" in resumed.stdout
    after = _finished(journal)
    assert after == {f"kill/fold-{n:02d}": n_trials for n in range(3)}
    storage = open_storage(parse_storage(f"journal:{journal}"), read_only=True)
    for number in range(3):  # exactly n_trials per fold, every one complete
        trials = optuna.load_study(study_name=f"kill/fold-{number:02d}",
                                   storage=storage).get_trials(deepcopy=False)
        states = pd.Series([t.state.name for t in trials]).value_counts()
        assert states.get("COMPLETE", 0) == n_trials, states

    listed = _cli("studies", "--dir", str(home), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:4] == ["kill", "3", f"{n_trials}/{n_trials}", "complete"]
    assert row[-1] == "config"
    assert not (tmp_path / "default-home").exists() and not (tmp_path / ".foldwise").exists()


@pytest.mark.slow  # three fresh interpreters (about 15 s)
def test_report_and_delete_in_real_processes(small, tmp_path):
    home = tmp_path / "home"
    assert main(["run", str(small), "--quiet", "--dir", str(home)]) == 0
    out = tmp_path / "report.html"
    report = _cli("report", "small", "-o", str(out), "--dir", str(home), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith(f"wrote the report of study 'small': {out} (")
    assert report.stdout.rstrip().endswith(" MB)")  # the size, as a person reads it
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    refused = _cli("delete", "small", "--dir", str(home), cwd=tmp_path)
    assert refused.returncode == 1
    assert "run again with --yes to do it" in refused.stderr
    assert foldwise.list_studies(f"journal:{home / 'studies.journal'}") == ["small"]
    deleted = _cli("delete", "small", "--yes", "--dir", str(home), cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.startswith("deleted study 'small' (4 Optuna studies)")
    assert foldwise.list_studies(f"journal:{home / 'studies.journal'}") == []


@pytest.mark.slow  # a fresh interpreter per case (a few seconds each)
@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "missing.toml"], "foldwise: error: missing.toml: no such config file."),
    (["run", "bad.toml"], "foldwise: error: bad.toml: [optimize] n_trials = 0: must be an "
                          "integer >= 1 (finished trials per fold)."),
    (["resume", "nope", "--dir", "home"], "foldwise: error: no study named 'nope' in "),
    (["resume", "python-study", "--dir", "home"], "was not started from a config file"),
    (["report", "nope", "--dir", "home"], "foldwise: error: no study named 'nope' in "),
    (["delete", "nope", "--yes", "--dir", "home"], "foldwise: error: no study named 'nope' in "),
], ids=["missing-file", "bad-value", "resume-unknown", "resume-python", "report-unknown",
        "delete-unknown"])
def test_errors_are_one_line_in_real_processes(argv, expected, tmp_path):
    (tmp_path / "bad.toml").write_text(SMALL.replace("n_trials = 3", "n_trials = 0"))
    foldwise.optimize(foldwise.examples.sma_crossover, foldwise.datasets.load_goog(),
                      {"fast": (5, 30), "slow": (35, 120)}, WalkForward(1000, 500),
                      n_trials=1, study="python-study", show_progress=False,
                      storage=f"journal:{tmp_path / 'home' / 'studies.journal'}",
                      cache=tmp_path / "home", check_lookahead=False)
    done = _cli(*argv, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert done.stdout == ""


def test_the_readme_shows_the_commands_and_space_forms_that_work():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    space = tomllib.loads(section.split("```toml\n", 1)[1].split("```", 1)[0])["space"]
    document = tomllib.loads(SMALL)
    config = parse_config(document | {"space": space}, origin="README")
    assert set(config.space) == {"fast", "slow", "threshold", "side", "lag"}
    for command in ("run", "studies", "show", "report", "resume", "delete"):
        assert f"foldwise {command} " in section
    assert (ROOT / "examples" / "study.toml").is_file()


@pytest.mark.slow  # 11 folds x 12 trials on GOOG (a few seconds)
def test_the_example_config_runs_as_is(tmp_path, capsys):
    assert main(["run", str(EXAMPLE), "--quiet", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "running study 'goog-sma'" in out and "11 fold(s)" in out and "verdict:" in out
    record = foldwise.load_result("goog-sma", storage=f"journal:{tmp_path}/studies.journal",
                                  cache=tmp_path)
    assert record.complete and record.manifest.n_trials == 12


@pytest.mark.slow  # a fresh interpreter and two worker processes (about 10 s)
def test_worker_processes_import_a_strategy_module_next_to_the_config(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "workers_strategies.py").write_text(textwrap.dedent("""
        import pandas as pd

        def cross(data, fast=10, slow=50):
            close = pd.DataFrame(data["close"], index=data.index, columns=data.assets)
            return (close.rolling(fast).mean() > close.rolling(slow).mean()).astype(float)
        """))
    (project / "study.toml").write_text(
        SMALL.replace("foldwise.examples:sma_crossover", "workers_strategies:cross")
        .replace("n_trials = 3", "n_trials = 3\nn_jobs = 2"))
    done = _cli("run", str(project / "study.toml"), "--dir", str(tmp_path / "home"), "--quiet",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "workers_strategies:cross" in done.stdout and "verdict:" in done.stdout
    assert _finished(tmp_path / "home" / "studies.journal") == {
        f"small/fold-{n:02d}": 3 for n in range(3)}
