"""The strategy contract: parameters, outputs, fingerprints and the causality check."""

from __future__ import annotations

import functools
import importlib
import inspect
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from foldwise import BacktestResult, Strategy, as_strategy, check_causal, strategy
from foldwise.errors import (
    FingerprintError,
    LookaheadError,
    StrategyError,
    StrategyOutputError,
    StrategyParameterError,
)
from foldwise.examples import mean_reversion, sma_crossover

from .conftest import make_panel

# --- parameters ----------------------------------------------------------------------------


def test_validate_params_fills_defaults_and_suggests_names():
    assert sma_crossover.validate_params({"slow": 30}) == {"fast": 10, "slow": 30, "short": False}
    with pytest.raises(StrategyParameterError, match="no parameter 'sloww'. Did you mean 'slow'"):
        sma_crossover.validate_params({"sloww": 30})
    with pytest.raises(StrategyParameterError, match="Its parameters: fast, slow, short"):
        sma_crossover.validate_params({"zzz": 1})

    def needs(data, window, scale=1.0):
        return data.frame() * 0

    with pytest.raises(StrategyParameterError, match="needs a value for 'window'"):
        Strategy(needs).validate_params({})

    def flexible(data, **options):
        return data.frame() * 0

    assert Strategy(flexible).validate_params({"anything": 1}) == {"anything": 1}


def test_validate_params_with_kwargs_and_required_names_read_once_from_the_signature():
    def flexible(data, window, scale=1.0, **extra):
        return data.frame() * 0

    runner = Strategy(flexible)
    assert runner.validate_params({"window": 3, "anything": 1}) == {
        "scale": 1.0, "window": 3, "anything": 1}
    assert runner.parameters == {"window": inspect.Parameter.empty, "scale": 1.0}
    runner.parameters["scale"] = 99.0  # a copy: the strategy's defaults are untouched
    assert runner.validate_params({"window": 1}) == {"scale": 1.0, "window": 1}
    with pytest.raises(StrategyParameterError, match="needs a value for 'window'"):
        runner.validate_params({"scale": 2.0})
    resolved = runner.validate_params({"window": 2})
    resolved["scale"] = 5.0  # a new dict each call
    assert runner.validate_params({"window": 2})["scale"] == 1.0


@pytest.mark.parametrize("as_frame", [False, True])
def test_a_strategy_may_return_an_array_or_a_frame(as_frame):
    data = make_panel(90, 3, seed=8)

    def momentum(data, window=5):
        close = data.array("close")
        weights = np.zeros(close.shape)
        weights[window:] = np.sign(close[window:] - close[:-window]) / 3
        if as_frame:
            return pd.DataFrame(weights, index=data.index, columns=data.assets)
        return weights

    result = Strategy(momentum).run(data, {"window": 7}, costs=2)
    close = data.array("close")
    expected = np.zeros(close.shape)
    expected[7:] = np.sign(close[7:] - close[:-7]) / 3
    np.testing.assert_array_equal(result.positions.to_numpy(), expected)
    assert result.metric("sharpe") == result.metrics()["sharpe"]


def test_signature_must_take_data_first():
    def no_args():
        return None

    with pytest.raises(StrategyError, match="market data as its first positional argument"):
        Strategy(no_args).parameters  # noqa: B018
    with pytest.raises(StrategyError, match="must be callable"):
        Strategy(42)  # type: ignore[arg-type]


def test_decorator_forms_and_repr():
    @strategy
    def plain(data, n=3):
        return data.frame() * 0

    @strategy(name="named", causal=False)
    def other(data):
        return data.frame() * 0

    assert isinstance(plain, Strategy) and plain.name == "plain" and plain.causal
    assert other.name == "named" and not other.causal
    assert as_strategy(plain) is plain
    assert repr(plain) == "Strategy(plain(n=3), causal=True)"
    assert plain(make_panel(5, 2), n=1).shape == (5, 2)  # still callable as the function


def test_class_form():
    class Momentum(Strategy):
        def compute(self, data, lookback=20):
            close = data.frame("close")
            return (close.pct_change(lookback) > 0).astype(float) / data.n_assets

    momentum = Momentum()
    assert momentum.name == "Momentum"
    assert momentum.parameters == {"lookback": 20}
    result = momentum.run(make_panel(60, 2), {"lookback": 5})
    assert isinstance(result, BacktestResult)
    with pytest.raises(StrategyError, match="needs a function"):
        Strategy()


# --- outputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda d: None, "returned NoneType"),
        (lambda d: "weights", "returned str"),
        (lambda d: np.ones((3, 3)), r"do not fit the data: weights have shape \(3, 3\)"),
        (lambda d: pd.DataFrame(1.0, index=d.index, columns=["nope"]), "not in the data"),
        (lambda d: BacktestResult.from_returns(pd.Series(0.0, index=d.index[:5])),
         "BacktestResult over 5 dates"),
    ],
)
def test_wrong_outputs_are_refused_with_the_strategy_name(output, message):
    data = make_panel(20, 2)

    def broken(data):
        return output(data)

    with pytest.raises(StrategyOutputError, match=f"strategy 'broken' {message}|{message}"):
        Strategy(broken).run(data)


def test_a_ready_result_passes_through():
    data = make_panel(20, 2)
    ready = BacktestResult.from_returns(pd.Series(0.001, index=data.index))

    def simulated(data):
        return ready

    assert Strategy(simulated).run(data) is ready


def test_run_needs_market_data():
    with pytest.raises(StrategyError, match=r"MarketData\.from_frame"):
        sma_crossover.run(pd.DataFrame({"A": [1.0]}))


# --- causality -----------------------------------------------------------------------------


def test_check_causal_accepts_the_examples_and_catches_lookahead():
    data = make_panel(200, 6)
    check_causal(sma_crossover, data, {"fast": 5, "slow": 20})
    check_causal(mean_reversion, data, {"lookback": 10, "n_long": 2, "n_short": 2})

    def peeks(data):
        close = data.frame("close")
        return (close.shift(-1) > close).astype(float) / data.n_assets

    def full_sample_mean(data):
        close = data.frame("close")
        return (close > close.mean()).astype(float) / data.n_assets

    for cheat in (peeks, full_sample_mean):
        with pytest.raises(LookaheadError, match="looks ahead: its weight dated"):
            check_causal(cheat, data)


# --- fingerprints --------------------------------------------------------------------------

STRATEGIES = '''
"""A user's strategy module."""
import numpy as np
from userpkg import helpers
from userpkg.helpers import smooth

THRESHOLD = 0.0
UNUSED = 1


def signal(close, window):
    return smooth(close, window) - close


def unrelated(x):
    return x + 1


def strat(data, window=5):
    # weights from the signal
    raw = signal(data.array("close"), window)
    return np.where(helpers.scale(raw) > THRESHOLD, 1.0, 0.0)


class Mom:
    def compute(self, data, lookback=3):
        return np.sign(data.array("close") - smooth(data.array("close"), lookback))
'''

HELPERS = '''
import numpy as np


def smooth(values, window):
    return np.cumsum(values, axis=0) / window


def scale(values):
    return values * 2.0


def elsewhere():
    return 3
'''


class UserPackage:
    """Writes a user package to a fresh directory and imports it under the same name."""

    counter = 0

    def __init__(self, tmp_path, monkeypatch):
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch

    def load(self, strategies=STRATEGIES, helpers=HELPERS):
        UserPackage.counter += 1
        root = self.tmp_path / f"v{UserPackage.counter}"
        package = root / "userpkg"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "strategies.py").write_text(textwrap.dedent(strategies))
        (package / "helpers.py").write_text(textwrap.dedent(helpers))
        for name in [m for m in sys.modules if m == "userpkg" or m.startswith("userpkg.")]:
            self.monkeypatch.delitem(sys.modules, name)
        self.monkeypatch.syspath_prepend(str(root))
        importlib.invalidate_caches()
        return importlib.import_module("userpkg.strategies"), root

    def fingerprint(self, strategies=STRATEGIES, helpers=HELPERS, attr="strat"):
        module, _ = self.load(strategies, helpers)
        target = getattr(module, attr)
        return Strategy(target().compute if isinstance(target, type) else target).fingerprint


@pytest.fixture
def userpkg(tmp_path, monkeypatch):
    return UserPackage(tmp_path, monkeypatch)


def test_fingerprint_follows_the_helpers_the_strategy_uses(userpkg):
    module, _ = userpkg.load()
    sources = Strategy(module.strat).fingerprint_sources()
    for covered in ("code:userpkg.strategies.strat", "code:userpkg.strategies.signal",
                    "code:userpkg.helpers.smooth", "code:userpkg.helpers.scale",
                    "value:userpkg.strategies.THRESHOLD"):
        assert covered in sources
    for not_covered in ("unrelated", "elsewhere", "UNUSED", "numpy"):
        assert not any(not_covered in s for s in sources), not_covered


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("the strategy itself", lambda s, h: (s.replace("window=5", "window=6"), h)),
        ("a helper in the same module", lambda s, h: (s.replace(") - close", ") - 2 * close"), h)),
        ("a helper imported by name", lambda s, h: (s, h.replace("/ window", "/ (window + 1)"))),
        ("a helper used as module.attr", lambda s, h: (s, h.replace("* 2.0", "* 3.0"))),
        ("a module constant it reads", lambda s, h: (s.replace("THRESHOLD = 0.0", "THRESHOLD = 0.1"), h)),
    ],
)
def test_editing_code_the_strategy_uses_changes_the_fingerprint(userpkg, what, edit):
    assert userpkg.fingerprint() != userpkg.fingerprint(*edit(STRATEGIES, HELPERS)), what


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("an unrelated function", lambda s, h: (s.replace("x + 1", "x + 2"), h)),
        ("an unrelated helper", lambda s, h: (s, h.replace("return 3", "return 4"))),
        ("an unused constant", lambda s, h: (s.replace("UNUSED = 1", "UNUSED = 2"), h)),
        ("a comment", lambda s, h: (s.replace("# weights from the signal", "# reworded"), h)),
        ("formatting", lambda s, h: (s.replace("raw = signal(", "raw   =   signal("), h)),
        ("the module docstring", lambda s, h: (s.replace("A user's", "Some"), h)),
    ],
)
def test_editing_anything_else_keeps_the_fingerprint(userpkg, what, edit):
    assert userpkg.fingerprint() == userpkg.fingerprint(*edit(STRATEGIES, HELPERS)), what


def test_class_strategies_follow_their_methods(userpkg):
    base = userpkg.fingerprint(attr="Mom")
    assert base == userpkg.fingerprint(attr="Mom")
    assert base != userpkg.fingerprint(STRATEGIES.replace("lookback=3", "lookback=4"), attr="Mom")
    assert base != userpkg.fingerprint(
        helpers=HELPERS.replace("/ window", "/ (window + 1)"), attr="Mom")


@pytest.mark.slow  # a fresh interpreter per check: seconds
def test_same_code_gives_the_same_fingerprint_in_a_fresh_process(userpkg):
    module, root = userpkg.load()
    here = Strategy(module.strat).fingerprint
    code = (f"import sys; sys.path.insert(0, {str(root)!r}); "
            "from userpkg.strategies import strat; from foldwise import Strategy; "
            "print(Strategy(strat).fingerprint)")
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        assert out.stdout.strip() == here


def test_closure_values_and_partials_are_part_of_the_fingerprint():
    def make(threshold):
        def thresholded(data):
            return (data.frame() > threshold).astype(float)
        return thresholded

    assert Strategy(make(1.0)).fingerprint != Strategy(make(2.0)).fingerprint
    assert Strategy(make(1.0)).fingerprint == Strategy(make(1.0)).fingerprint

    def scaled(data, scale):
        return data.frame() * 0 + scale

    assert (Strategy(functools.partial(scaled, scale=1)).fingerprint
            != Strategy(functools.partial(scaled, scale=2)).fingerprint)


def test_unreadable_source_needs_a_version():
    namespace: dict = {}
    exec("def hidden(data):\n    return data.frame() * 0\n", namespace)
    with pytest.raises(FingerprintError, match="cannot read the source.*pass version="):
        Strategy(namespace["hidden"]).fingerprint  # noqa: B018
    v1 = Strategy(namespace["hidden"], version="1").fingerprint
    assert v1 == Strategy(namespace["hidden"], version="1").fingerprint
    assert v1 != Strategy(namespace["hidden"], version="2").fingerprint


def test_example_fingerprints_cover_their_shared_helper():
    sources = sma_crossover.fingerprint_sources()
    # the moving-average kernel sma_crossover shares with rolling_mean (and mean_reversion)
    assert "code:foldwise.examples._window_means" in sources
    assert "code:foldwise.examples._running_sums" in sources
    assert "code:foldwise.examples._window_means" in mean_reversion.fingerprint_sources()
    assert "code:foldwise.examples.mean_reversion" not in sources
    assert sma_crossover.fingerprint != mean_reversion.fingerprint


def test_helpers_are_followed_even_when_their_module_left_sys_modules(userpkg):
    module, _ = userpkg.load()
    sys.modules.pop("userpkg.helpers")
    sources = Strategy(module.strat).fingerprint_sources()
    assert "code:userpkg.helpers.smooth" in sources


def test_check_causal_gives_the_same_verdict_in_worker_processes():
    data = make_panel(200, 6)
    assert check_causal(sma_crossover, data, {"fast": 5, "slow": 20}, cutoffs=3,
                        n_jobs=2) == 7  # the baseline and two scrambles per cut-off

    def peeks_late(data):  # looks ahead only after the middle of the history
        close = data.frame("close")
        ahead = (close.shift(-1) > close).astype(float)
        ahead.iloc[: data.n_dates // 2] = 0.0
        return ahead / data.n_assets

    messages = []
    for n_jobs in (1, 2):
        with pytest.raises(LookaheadError, match="looks ahead: its weight dated") as caught:
            check_causal(peeks_late, data, cutoffs=3, n_jobs=n_jobs)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
