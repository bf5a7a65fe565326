"""Cache keys: never a stale hit, and the same run always gets the same key."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import sys
import textwrap
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foldwise import BacktestCache, BacktestSettings, Costs, MarketData, Strategy
from foldwise.cache import _keys
from foldwise.errors import CacheArgumentError, ParameterError, StrategyParameterError
from tests._cache_support import make_data, trend

DATA = make_data()


def key(params, data=DATA, strategy=trend, **settings):
    return _keys.make_key(strategy, params, data, **settings).digest


# --- parameters ---------------------------------------------------------------------------


def test_same_params_in_another_order_are_a_hit():
    assert key({"lookback": 5, "gross": 1.0}) == key({"gross": 1.0, "lookback": 5})


def test_defaults_are_filled_in():
    assert key({}) == key({"lookback": 5}) == key({"lookback": 5, "gross": 1.0})


@pytest.mark.parametrize(("a", "b"), [
    (5, 5.0), (5, "5"), (5.0, "5"), (True, 1), (False, 0), (1.0, True), (None, 0),
    ((5, 6), [5, 6]), ([5, 6], [6, 5]), (0.0, -0.0), ({"a": 1}, {"a": 1.0}),
    (float("nan"), None), (float("inf"), float("-inf")),
])
def test_a_parameter_changed_in_value_or_type_is_a_miss(a, b):
    assert key({"gross": a}) != key({"gross": b})


@pytest.mark.parametrize(("numpy_value", "python_value"), [
    (np.int64(5), 5), (np.int32(5), 5), (np.float64(2.5), 2.5), (np.float32(0.5), 0.5),
    (np.bool_(True), True), (np.str_("x"), "x"),
])
def test_numpy_scalars_count_as_the_python_value(numpy_value, python_value):
    assert key({"gross": numpy_value}) == key({"gross": python_value})


def test_nested_dates_and_paths_are_canonical():
    nested = {"gross": {"b": [1, (2, 3)], "a": {"when": dt.date(2024, 1, 2)}}}
    again = {"gross": {"a": {"when": pd.Timestamp("2024-01-02").date()}, "b": [1, (2, 3)]}}
    assert key(nested) == key(again)
    assert key({"gross": Path("/x/y")}) == key({"gross": PurePosixPath("/x/y")})


def test_an_object_parameter_is_refused_naming_it():
    class Model:
        pass

    with pytest.raises(ParameterError, match=r"params\['gross'\]\['model'\]") as info:
        key({"gross": {"model": Model()}})
    assert "0x" not in str(info.value)  # never a repr with a memory address


def test_unknown_parameter_is_refused_with_a_suggestion():
    with pytest.raises(StrategyParameterError, match="Did you mean 'lookback'"):
        key({"lookbak": 5})


# --- data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", [(0, 0), (130, 1), (-1, 2)])
def test_one_data_value_changed_anywhere_is_a_miss(where):
    close = DATA.array("close").copy()
    close[where] *= 1.0000001
    changed = MarketData({"close": close}, DATA.index, DATA.assets)
    assert key({}, data=changed) != key({})


def test_dates_or_asset_labels_changed_are_a_miss():
    close = DATA.array("close")
    shifted = MarketData({"close": close}, DATA.index + pd.Timedelta(days=1), DATA.assets)
    renamed = MarketData({"close": close}, DATA.index, ["AAA", "BBB", "ZZZ"])
    assert len({key({}), key({}, data=shifted), key({}, data=renamed)}) == 3


def test_equal_data_in_another_object_is_a_hit():
    copy = MarketData({"close": DATA.array("close").copy()}, DATA.index.copy(), list(DATA.assets))
    assert key({}, data=copy) == key({})


# --- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {"costs": 1.0}, {"costs": Costs(slippage_bps=1)}, {"delay": 1}, {"price_field": "open"},
    {"missing": "raise"}, {"periods_per_year": 365},
])
def test_a_changed_setting_is_a_miss(settings):
    assert key({}, **settings) != key({})


def test_equivalent_settings_are_a_hit():
    assert key({}, costs=3) == key({}, costs=Costs(commission_bps=3.0)) == key(
        {}, costs={"commission_bps": 3}) == key({}, costs=Costs(3, 0))
    assert key({}, costs=None) == key({}, costs=0) == key({}, costs=Costs(0.0, -0.0))
    assert key({}, periods_per_year=252) == key({}, periods_per_year=252.0)
    assert key({}, delay=np.int64(2)) == key({}, delay=2)


def test_engine_version_bump_is_a_miss(monkeypatch):
    before = key({})
    monkeypatch.setattr(_keys._engine, "ENGINE_VERSION", _keys._engine.ENGINE_VERSION + 1)
    assert key({}) != before


# --- windows ------------------------------------------------------------------------------


def test_windows_are_part_of_the_key():
    keys = {key({}), key({}, window=(0, 100)), key({}, window=(0, 101)),
            key({}, window=(1, 101))}
    assert len(keys) == 4
    assert key({}, window=(0, 100)) == key({}, window=slice(0, 100))


def test_window_key_knows_its_dates_and_its_full_run():
    k = _keys.make_key(trend, {}, DATA, window=(10, 20))
    assert (k.window.start, k.window.stop) == (10, 20)
    assert k.window.first == DATA.index[10].isoformat()
    assert k.window.last == DATA.index[19].isoformat()
    assert k.full() == _keys.make_key(trend, {}, DATA)


@pytest.mark.parametrize("window", [(5, 5), (-1, 10), (0, 10_000), (2.0, 5), "0:5",
                                    slice(0, 10, 2), (True, 4)])
def test_a_window_outside_the_data_is_refused(window):
    with pytest.raises(CacheArgumentError):
        key({}, window=window)


def test_data_must_be_marketdata():
    with pytest.raises(CacheArgumentError, match="MarketData"):
        key({}, data=DATA.frame("close"))


# --- the per-process memo -----------------------------------------------------------------

scalars = st.one_of(st.integers(-3, 3), st.floats(allow_nan=False, width=16),
                    st.booleans(), st.none(), st.sampled_from(["", "5", "a"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(scalars, scalars), min_size=2, max_size=2))
def test_memoized_keys_equal_freshly_computed_keys(pairs):
    """The memo never merges two parameter sets that canonical JSON keeps apart."""
    strategy = Strategy(lambda data, lookback=5, gross=1.0: 0.0, version="1")
    seen = {}
    for lookback, gross in pairs:
        params = {"lookback": lookback, "gross": gross}
        memoized = _keys.make_key(strategy, params, DATA).digest
        _keys._memo.clear()
        fresh = _keys.make_key(strategy, params, DATA).digest
        assert memoized == fresh
        canonical = _keys.canonical_json(params)
        assert seen.setdefault(canonical, fresh) == fresh
    assert len(set(seen.values())) == len(seen)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(scalars, scalars), min_size=1, max_size=3),
       st.sampled_from([(0, 5), (5, 20), (3, 4)]))
def test_window_keys_of_a_memoized_set_equal_freshly_computed_keys(pairs, window):
    """A window of a set whose full run was keyed first reuses its canonical parameters
    and full key; its digest and its full run are those computed from nothing."""
    strategy = Strategy(lambda data, lookback=5, gross=1.0: 0.0, version="1")
    for lookback, gross in pairs:
        params = {"lookback": lookback, "gross": gross}
        full = _keys.make_key(strategy, params, DATA)
        memoized = _keys.make_key(strategy, params, DATA, window=window)
        _keys._memo.clear()
        _keys._fulls.clear()
        fresh = _keys.make_key(strategy, params, DATA, window=window)
        assert memoized == fresh and memoized.full() == fresh.full() == full


def test_a_new_set_is_validated_and_made_canonical_once_for_its_run_and_windows(monkeypatch):
    """The optimizer keys a new set's full run, then its train and test windows: its
    parameters are checked and written canonically once, and the slices' full run is not
    hashed again."""
    calls = {"validate": 0, "build": 0}
    validate, build = Strategy.validate_params, _keys._build

    def counting_validate(self, params):
        calls["validate"] += 1
        return validate(self, params)

    def counting_build(*args):
        calls["build"] += 1
        return build(*args)

    monkeypatch.setattr(Strategy, "validate_params", counting_validate)
    monkeypatch.setattr(_keys, "_build", counting_build)
    params = {"lookback": 977, "gross": 0.25}
    full = _keys.make_key(trend, params, DATA)
    train = _keys.make_key(trend, params, DATA, window=(0, 10))
    test = _keys.make_key(trend, params, DATA, window=(10, 20))
    assert train.full() is full and test.full() is full
    assert calls == {"validate": 1, "build": 3}


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(_keys, "_MEMO_LIMIT", 10)
    for i in range(25):
        key({"lookback": i + 1})
    assert len(_keys._memo) <= 10


def test_the_key_memo_keeps_the_newest_keys_within_its_limit():
    """A 20,000-trial optimization builds tens of thousands of keys: the memo holds a few
    thousand, the oldest dropped first (it was cleared only at 100,000)."""
    _keys._memo.clear()
    first = key({"lookback": 1})
    n = 5000
    for i in range(2, n + 1):
        key({"lookback": i})
    assert n > _keys._MEMO_LIMIT and len(_keys._memo) == _keys._MEMO_LIMIT
    assert key({"lookback": n}) is key({"lookback": n})  # the newest is still memoized
    again = key({"lookback": 1})
    assert again == first and again is not first  # the oldest was dropped, then rebuilt


# --- code edits ---------------------------------------------------------------------------

HELPERS = '''
import numpy as np

def smooth(values, n):
    return values  # identity for now

def unrelated():
    return 1
'''

STRATEGY = '''
import numpy as np
from fw_edit_helpers import smooth

def follow(data, lookback=5):
    close = smooth(data.array("close"), lookback)
    return np.ones_like(close) / close.shape[1]
'''


def _load(directory: Path, helpers: str, strategy: str) -> Strategy:
    """Import the two modules from ``directory`` as a new process would."""
    directory.mkdir()
    (directory / "fw_edit_helpers.py").write_text(textwrap.dedent(helpers))
    (directory / "fw_edit_strategy.py").write_text(textwrap.dedent(strategy))
    for name in ("fw_edit_helpers", "fw_edit_strategy"):
        sys.modules.pop(name, None)
    sys.path.insert(0, str(directory))
    try:
        importlib.invalidate_caches()
        strategy = Strategy(importlib.import_module("fw_edit_strategy").follow)
        _ = strategy.fingerprint  # while the modules are imported, as in the user's process
        return strategy
    finally:
        sys.path.remove(str(directory))
        for name in ("fw_edit_helpers", "fw_edit_strategy"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize(("helpers", "strategy", "hit"), [
    (HELPERS, STRATEGY, True),
    (HELPERS.replace("# identity for now", "# still the identity"), STRATEGY, True),
    (HELPERS.replace("return 1", "return 2"), STRATEGY, True),
    (HELPERS.replace("return values", "return values * 1.0"), STRATEGY, False),
    (HELPERS, STRATEGY.replace("np.ones_like(close) /", "np.ones_like(close) * 0.5 /"), False),
    (HELPERS, STRATEGY.replace("lookback=5", "lookback=6"), False),
], ids=["unchanged", "helper-comment", "unrelated-helper", "helper-edited",
        "strategy-edited", "default-edited"])
def test_code_edits(tmp_path, helpers, strategy, hit):
    cache = BacktestCache(tmp_path / "fw")
    original = _load(tmp_path / "v1", HELPERS, STRATEGY)
    cache.get_or_run(original, {"lookback": 5}, DATA)
    edited = _load(tmp_path / "v2", helpers, strategy)
    assert (cache.get(cache.key(edited, {"lookback": 5}, DATA)) is not None) is hit


# --- through the cache --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    cache = BacktestCache(tmp_path_factory.mktemp("fw"))
    cache.get_or_run(trend, {"lookback": 5, "gross": 1.0}, DATA, costs=2)
    return cache


@pytest.mark.parametrize(("params", "changes"), [
    ({"lookback": 5, "gross": 1}, {}),                 # 1 is not 1.0
    ({"lookback": 5, "gross": "1.0"}, {}),
    ({"lookback": 5, "gross": True}, {}),
    ({"lookback": 6, "gross": 1.0}, {}),
    ({"lookback": 5, "gross": 1.0}, {"costs": 2.5}),
    ({"lookback": 5, "gross": 1.0}, {"costs": 2, "delay": 1}),
    ({"lookback": 5, "gross": 1.0}, {"costs": 2, "window": (0, 100)}),
])
def test_stored_run_is_not_served_for_another_run(stored, params, changes):
    changes = {"costs": 2, **changes}
    assert stored.get(stored.key(trend, params, DATA, **changes)) is None


def test_stored_run_is_served_for_the_same_run_in_any_spelling(stored):
    for params in ({"gross": 1.0, "lookback": 5}, {"lookback": np.int64(5)}, {}):
        assert stored.get(stored.key(trend, params, DATA, costs=Costs(2))) is not None
    close = DATA.array("close").copy()
    close[-1, -1] += 1e-9
    changed = MarketData({"close": close}, DATA.index, DATA.assets)
    assert stored.get(stored.key(trend, {}, changed, costs=2)) is None


def test_a_record_rebuilds_its_own_key(stored):
    """Everything needed to recompute a key (and so to rerun it) is in the index."""
    for record in (stored.get(k) for k in stored.runs().index):
        rebuilt = stored.key(trend, record.params, DATA, **record.settings)
        assert rebuilt.digest == record.key


# --- one settings object ----------------------------------------------------------------------


def test_a_settings_object_and_keywords_give_one_key():
    settings = BacktestSettings(costs=3, delay=1)
    assert key({}, settings=settings) == key({}, costs=3, delay=1) == key(
        {}, settings=BacktestSettings(delay=1), costs=3)
    assert key({}, settings=BacktestSettings(periods_per_year=252)) == key(
        {}, settings=BacktestSettings(periods_per_year=252.0)) == key({})
    assert key({}, settings=settings, delay=0) == key({}, costs=3)  # keywords win


def test_the_key_hashes_the_canonical_form_of_the_settings():
    settings = BacktestSettings(costs=Costs(1, 2), price_field="open")
    k = _keys.make_key(trend, {}, DATA, settings=settings)
    assert json.loads(k.settings) == settings.to_dict()
    # the layout of KEY_VERSION 1: keys stored before settings were one object still hit
    assert k.settings == ('{"costs":{"commission_bps":1.0,"slippage_bps":2.0},"delay":0,'
                          '"missing":"zero","periods_per_year":252.0,"price_field":"open"}')


def test_settings_text_is_memoized_per_settings_object():
    settings = BacktestSettings(costs=7)
    first = _keys.settings_json(settings)
    assert _keys.settings_json(settings) is first
    assert _keys.settings_json(BacktestSettings(costs=7)) is first  # equal objects, one entry


def test_settings_go_positionally_after_the_data_and_window(tmp_path):
    cache = BacktestCache(tmp_path)
    settings = BacktestSettings(costs=2)
    assert cache.key(trend, {}, DATA, (0, 50), settings) == cache.key(
        trend, {}, DATA, window=(0, 50), costs=2)
    result = cache.get_or_run(trend, {}, DATA, settings)
    assert result.settings is settings  # the one object reaches Strategy.run
    assert cache.metrics(trend, {}, DATA, None, settings) == result.metrics()
    assert cache.window_metrics(trend, {}, DATA, [(0, 50)], settings)[0] == pytest.approx(
        result.islice(0, 50).metrics(), nan_ok=True)
    assert cache.executed == 1
    with pytest.raises(CacheArgumentError, match="settings="):
        cache.key(trend, {}, DATA, settings)  # where the window goes
