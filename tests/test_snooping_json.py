"""The data-snooping results' exact JSON round trip (``to_json`` / ``from_json``): a real
:class:`SnoopingReport` and results built from random values come back from
``json.loads(json.dumps(...))`` with every value of its type and every float to the last
bit (NaN sign and payload included), every array and table with its dtypes and index."""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import foldwise
from foldwise.aggregate._snooping import COLUMNS, SnoopingReport, summary_lines
from foldwise.examples import sma_crossover
from foldwise.snooping import (
    HaircutResult,
    SnoopingError,
    SPAResult,
    StepMResult,
    haircut_sharpe_ratio,
    spa_stepm,
    spa_test,
)
from foldwise.space import Int

# --- exact comparison ---------------------------------------------------------------------------


def _bits(x: float) -> bytes:
    return struct.pack(">d", x)


def _assert_frames_same(a: pd.DataFrame, b: pd.DataFrame, where: str) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=True,
                                  check_index_type=True, check_column_type=True,
                                  check_names=True, obj=where)
    assert type(a.index) is type(b.index), where
    assert a.index.dtype == b.index.dtype and a.columns.dtype == b.columns.dtype, where
    assert list(a.dtypes) == list(b.dtypes), where
    _assert_same(list(a.index), list(b.index), f"{where}.index")
    _assert_same(list(a.columns), list(b.columns), f"{where}.columns")
    for i in range(a.shape[1]):
        x, y = a.iloc[:, i], b.iloc[:, i]
        if x.dtype.kind in "fbiuMm" and isinstance(x.dtype, np.dtype):
            assert x.to_numpy().tobytes() == y.to_numpy().tobytes(), f"{where} column {i}"
        else:
            _assert_same(x.tolist(), y.tolist(), f"{where} column {i}")


def _assert_same(a: Any, b: Any, where: str = "value") -> None:
    """``a`` and ``b`` equal to the last bit, of the same types all the way down."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, float):  # np.float64 included
        assert _bits(a) == _bits(b), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype.kind == "O":
            _assert_same(a.tolist(), b.tolist(), where)
        else:
            assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, pd.DataFrame):
        _assert_frames_same(a, b, where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for (ka, va), kb in zip(a.items(), b, strict=True):
            _assert_same(ka, kb, f"{where} key")
            _assert_same(va, b[kb], f"{where}[{ka!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif a is pd.NaT or a is pd.NA:
        assert b is a, where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _assert_plain_json(value: Any, where: str = "json") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str, where
            _assert_plain_json(v, f"{where}[{k!r}]")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _assert_plain_json(v, f"{where}[{i}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), \
            f"{where}: {type(value)}"


def _round_trip(obj: Any) -> Any:
    """``obj`` through ``to_json``, JSON text and ``from_json``, checked exact."""
    value = obj.to_json()
    _assert_plain_json(value)
    text = json.dumps(value, allow_nan=True)
    back = type(obj).from_json(json.loads(text))
    _assert_same(back, obj, type(obj).__name__)
    assert json.dumps(back.to_json(), allow_nan=True) == text
    return back


# --- a real report ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> foldwise.WalkForwardResult:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = tmp_path_factory.mktemp("snooping-json")
    return foldwise.optimize(
        sma_crossover, foldwise.datasets.load_goog(),
        {"fast": Int(5, 30), "slow": Int(40, 120)}, foldwise.WalkForward(train=500, test=250),
        n_trials=15, seed=0, study="s", storage="memory", cache=foldwise.BacktestCache(tmp),
        show_progress=False)


@pytest.fixture(scope="module", params=["auto", "flat"])
def report(request, result) -> SnoopingReport:
    return result.snooping(request.param, n_bootstrap=50)


def test_a_real_report_round_trips_exactly(report):
    assert report.spa and report.stepm and report.haircut is not None  # every part there
    assert report.table["start"].dtype.kind == "M"
    back = _round_trip(report)
    assert summary_lines(back) == summary_lines(report)
    assert back.summary() == report.summary()
    for name, spa in report.spa.items():
        assert str(back.spa[name]) == str(spa)
        assert back.spa[name].critical_value(0.1) == spa.critical_value(0.1)
        assert str(back.stepm[name]) == str(report.stepm[name])
    assert str(back.haircut) == str(report.haircut)
    pd.testing.assert_frame_equal(back.haircut.table(), report.haircut.table(),
                                  check_exact=True)


def test_a_report_with_untested_windows_and_no_haircut_round_trips_exactly(report):
    """Rows as a window too short to test writes them (NaN statistics, no best set, no
    dates): ``superior`` turns float, ``best`` gets a missing value."""
    short = {"window": "fold 9 in sample", "start": pd.NaT, "end": pd.NaT, "n_sets": 3,
             "n_obs": 4, "best": None, "best_excess": math.nan, "spa_pvalue": math.nan,
             "spa_lower": math.nan, "spa_upper": math.nan, "superior": math.nan,
             "block_length": math.nan}
    table = pd.DataFrame([*report.table.to_dict("records"), short], columns=COLUMNS)
    assert table["superior"].dtype == np.float64 and table["best"].isna().iloc[-1]
    changed = dataclasses.replace(
        report, table=table, haircut=None, best_sharpe=-math.inf,
        min_backtest_length=math.nan, notes=(*report.notes, "fold 9 in sample: 4 bars"))
    back = _round_trip(changed)
    assert summary_lines(back) == summary_lines(changed)
    empty = dataclasses.replace(report, table=report.table.iloc[:0], spa={}, stepm={},
                                haircut=None)
    assert summary_lines(_round_trip(empty)) == summary_lines(empty)


def test_the_json_is_plain_and_carries_a_format(report):
    value = report.to_json()
    assert value["format"] == 1
    _assert_plain_json(value)
    assert set(value) == {"format", *(f.name for f in dataclasses.fields(SnoopingReport))}


@pytest.mark.parametrize("found", [2, 0, -1, 99, None, "1", 1.0, True])
def test_an_unknown_format_is_refused(report, found):
    value = report.to_json()
    if found is None:
        del value["format"]
    else:
        value["format"] = found
    with pytest.raises(ValueError, match="format") as caught:
        SnoopingReport.from_json(json.loads(json.dumps(value)))
    assert isinstance(caught.value, SnoopingError)


def test_a_malformed_report_is_refused(report):
    value = report.to_json()
    del value["table"]
    with pytest.raises(ValueError, match="'table'"):
        SnoopingReport.from_json(value)
    value = report.to_json()
    value["spa"] = {"full history": {"pvalue": 0.5}}
    with pytest.raises(ValueError, match="SPAResult"):
        SnoopingReport.from_json(value)
    value = report.to_json()
    value["table"] = {"$type": "frame?"}
    with pytest.raises(ValueError, match="unknown tag"):
        SnoopingReport.from_json(value)
    with pytest.raises(ValueError, match="unknown fields 'extra'"):
        SPAResult.from_json({**next(iter(report.spa.values())).to_json(), "extra": 1})


def test_object_columns_and_other_dtypes_round_trip_exactly(report):
    """The table as pandas 2 builds it (``best`` an object column) and columns of every
    supported dtype: values, dtypes, missing values and the index's frequency."""
    table = report.table.astype({"best": object})
    table.loc[1, "best"] = None
    table["params"] = [{"fast": i, "slow": 40 + i} for i in range(len(table))]
    back = _round_trip(dataclasses.replace(report, table=table))
    assert back.table["best"].dtype == object and back.table.loc[1, "best"] is None
    assert summary_lines(back) == summary_lines(dataclasses.replace(report, table=table))
    n = 6
    negative_nan = struct.unpack(">d", bytes.fromhex("fff8000000000000"))[0]  # inf - inf
    odd = pd.DataFrame({
        "f32": np.array([1.5, np.nan, -0.0, np.inf, 1e-45, 3.4e38], dtype=np.float32),
        "f64": np.array([np.nan, negative_nan, -0.0, 5e-324, -np.inf, 0.1]),
        "i8": np.arange(n, dtype=np.int8), "u64": np.full(n, 2**64 - 1, dtype=np.uint64),
        "flag": np.array([True, False] * 3),
        "ns": pd.to_datetime(["2020-01-01", None, "2021-06-30 12:00:00.000000001"] * 2,
                             format="ISO8601"),
        "s": pd.Series(pd.date_range("1900-01-01", periods=n, freq="D")).astype("M8[s]"),
        "tz": pd.date_range("2020-03-28", periods=n, freq="12h", tz="Europe/Paris"),
        "td": pd.to_timedelta([1, None, -3, 4, 5, 6], unit="ns"),
        "str_na": pd.array(["a", None, "", "é", "b", "c"], dtype="string"),
        "str_py": pd.array(["a", None, "", "é", "b", "c"],
                           dtype=pd.StringDtype("python", na_value=np.nan)),
        "obj": pd.Series([{"a": (1, 2.5)}, None, pd.Timestamp("2020-01-01", tz="UTC"),
                          pd.NaT, np.float64(negative_nan), [1, "x"]], dtype=object),
    }, index=pd.date_range("2024-01-01", periods=n, freq="B", name="day"))
    found = next(iter(report.stepm.values()))
    back = _round_trip(dataclasses.replace(found, table=odd))
    assert back.table.index.freq == odd.index.freq
    assert back.table["tz"].dtype == odd["tz"].dtype
    assert str(back.table["tz"].dt.tz) == "Europe/Paris"


# --- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [
    ["a", "b", "c", "d"], [3, 1, 2, 0], ["a", 1, 2.5, None], [True, False, "x", -(2**70)]],
    ids=["str", "int", "mixed", "bool-and-big-int"])
def test_labels_keep_their_type(columns):
    r = np.random.default_rng(1).normal(0.0005, 0.01, size=(300, 4))
    r[:, 2] += 0.003
    spa, found = spa_stepm(pd.DataFrame(r, columns=columns), n_bootstrap=60, seed=3)
    assert found.superior  # labels in the list too
    _round_trip(spa)
    _round_trip(found)


def test_tuple_labels_keep_their_type():
    columns = pd.MultiIndex.from_tuples([("x", 1), ("x", 2), ("y", 1), ("y", 2)])
    r = np.random.default_rng(2).normal(0.0, 0.01, size=(300, 4))
    spa = spa_test(pd.DataFrame(r, columns=columns), n_bootstrap=60, seed=0)
    assert type(_round_trip(spa).best) is tuple


def test_a_table_with_a_multiindex_or_object_labels_round_trips(report):
    found = next(iter(report.stepm.values()))
    n = len(found.table)
    tuples = pd.MultiIndex.from_arrays([[f"p{i % 3}" for i in range(n)], np.arange(n)],
                                       names=["set", "k"])
    _round_trip(dataclasses.replace(found, table=found.table.set_axis(tuples)))
    objects = pd.Index([("a", i) if i % 2 else np.int64(i) for i in range(n)], dtype=object,
                       tupleize_cols=False, name="set")
    _round_trip(dataclasses.replace(found, table=found.table.set_axis(objects)))


def test_a_label_of_an_unsupported_type_raises_type_error(report):
    spa = next(iter(report.spa.values()))
    with pytest.raises(TypeError, match=r"SPAResult\.best.*frozenset"):
        dataclasses.replace(spa, best=frozenset({1})).to_json()
    found = next(iter(report.stepm.values()))
    with pytest.raises(TypeError, match=r"StepMResult\.superior\[0\]"):
        dataclasses.replace(found, superior=[object()]).to_json()
    categories = found.table.set_axis(pd.CategoricalIndex(found.table.index))
    with pytest.raises(TypeError, match="StepMResult.table"):
        dataclasses.replace(found, table=categories).to_json()


@pytest.mark.parametrize("seed", [0, 2**127 + 5, [1, 2**70], (3, 4),
                                  np.array([1, 2], dtype=np.uint32), np.uint64(2**64 - 1)])
def test_the_seed_keeps_its_value_and_type(report, seed):
    spa = next(iter(report.spa.values()))
    _round_trip(dataclasses.replace(spa, seed=seed))


# --- random values ------------------------------------------------------------------------------

_NAN_PAYLOADS = st.builds(
    lambda sign, mantissa: struct.unpack(">d", ((sign << 63) | (0x7FF << 52) | mantissa)
                                         .to_bytes(8, "big"))[0],
    st.integers(0, 1), st.integers(1, 2**52 - 1))
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from([math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -5e-324,
                     2.2250738585072014e-308, 1.7976931348623157e308]),
    _NAN_PAYLOADS)
LABELS = st.text()
#: pyarrow, behind pandas' str dtype, holds no lone surrogates
TABLE_LABELS = st.text(st.characters(exclude_categories=("Cs",)))
INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SEEDS = st.one_of(st.none(), st.integers(0, 2**128), st.lists(st.integers(0, 2**64), max_size=4))


def test_nan_bits_are_kept_not_just_nan():
    """A negative NaN (what ``inf - inf`` gives on x86) and NaNs with payloads keep their
    bits; the canonical NaN is written as JSON's ``NaN``."""
    for bits in (0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001):
        value = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
        assert _bits(value) == bits.to_bytes(8, "big")  # Python floats keep them
        spa = SPAResult(value, value, value, value, "a", value, 1, 1, 0, 1, value, 0, True,
                        np.array([[value, math.nan, -math.nan]]))
        back = _round_trip(spa)
        assert _bits(back.pvalue) == bits.to_bytes(8, "big")
    assert json.dumps(SPAResult.to_json(back)["bootstrap_statistics"]["data"][1]) == "NaN"


@given(data=st.data(), n_boot=st.integers(0, 12))
def test_spa_results_round_trip_exactly(data, n_boot):
    boot = np.array(data.draw(st.lists(FLOATS, min_size=3 * n_boot, max_size=3 * n_boot)),
                    dtype=np.float64).reshape(n_boot, 3)
    spa = SPAResult(
        pvalue=data.draw(FLOATS), pvalue_lower=data.draw(FLOATS),
        pvalue_upper=data.draw(FLOATS), statistic=data.draw(FLOATS), best=data.draw(LABELS),
        best_mean=data.draw(FLOATS), n_sets=data.draw(INTS), n_obs=data.draw(INTS),
        n_excluded=data.draw(INTS), n_bootstrap=n_boot, block_length=data.draw(FLOATS),
        seed=data.draw(SEEDS), studentized=data.draw(st.booleans()),
        bootstrap_statistics=boot)
    _round_trip(spa)


@given(data=st.data(), labels=st.lists(TABLE_LABELS, unique=True, max_size=8))
def test_stepm_results_round_trip_exactly(data, labels):
    n = len(labels)
    superior = data.draw(st.lists(st.sampled_from(labels), unique=True) if labels
                         else st.just([]))
    table = pd.DataFrame(
        {"mean_excess": np.array(data.draw(st.lists(FLOATS, min_size=n, max_size=n)),
                                 dtype=np.float64),
         "statistic": np.array(data.draw(st.lists(FLOATS, min_size=n, max_size=n)),
                               dtype=np.float64)},
        index=pd.Index(labels, name="set"))
    table["superior"] = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)),
                                 dtype=bool)
    table["step"] = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)),
                             dtype=int)
    found = StepMResult(
        superior=superior, alpha=data.draw(FLOATS),
        critical_values=tuple(data.draw(st.lists(FLOATS, max_size=4))),
        n_sets=n, n_obs=data.draw(INTS), n_excluded=data.draw(INTS),
        n_bootstrap=data.draw(INTS), block_length=data.draw(FLOATS), seed=data.draw(SEEDS),
        studentized=data.draw(st.booleans()),
        recentering=data.draw(st.sampled_from(["full", "consistent"])), table=table)
    back = _round_trip(found)
    assert back.superior == found.superior


@given(data=st.data())
def test_haircut_results_round_trip_exactly(data):
    methods = ("bonferroni", "holm", "bhy", "average")

    def per_method() -> dict[str, float]:
        return {m: data.draw(FLOATS) for m in methods}

    haircut = HaircutResult(
        sharpe=data.draw(FLOATS), t_stat=data.draw(FLOATS), pvalue=data.draw(FLOATS),
        n_obs=data.draw(INTS), n_trials=data.draw(INTS), periods_per_year=data.draw(FLOATS),
        adjusted_pvalues=per_method(), haircut_sharpes=per_method(), haircuts=per_method(),
        others=data.draw(st.sampled_from(["given", "simulated"])),
        correlation=data.draw(st.none() | FLOATS), n_simulations=data.draw(INTS),
        seed=data.draw(SEEDS))
    _round_trip(haircut)


def test_a_simulated_haircut_keeps_its_seed_entropy():
    haircut = haircut_sharpe_ratio(1.2, 500, 40, seed=None, n_simulations=50)
    assert haircut.seed is not None and haircut.seed > 2**64  # fresh 128-bit entropy
    assert str(_round_trip(haircut)) == str(haircut)
