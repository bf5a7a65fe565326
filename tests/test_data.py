"""MarketData: constructors, validation errors (with the fix they name), hash and slices."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from foldwise import MarketData
from foldwise.errors import (
    DataError,
    DuplicateDatesError,
    EmptyDataError,
    MisalignedFieldsError,
    MissingFieldError,
    NonDatetimeIndexError,
    NonFiniteValueError,
    NonNumericFieldError,
    NonPositivePriceError,
    TimezoneError,
    UnsortedDatesError,
)

from .conftest import make_panel


def wide(values, start="2024-01-01", columns=("A", "B"), freq="D"):
    values = np.asarray(values, dtype=float)
    return pd.DataFrame(values, index=pd.date_range(start, periods=len(values), freq=freq),
                        columns=list(columns))


GOOD = [[10.0, 20.0], [11.0, 21.0], [12.0, np.nan]]


# --- constructors --------------------------------------------------------------------------


def test_from_frame_keeps_values_dates_and_assets():
    frame = wide(GOOD)
    data = MarketData.from_frame(frame)
    assert data.fields == ("close",)
    assert data.shape == (3, 2)
    assert list(data.assets) == ["A", "B"]
    assert data.index.equals(frame.index)
    np.testing.assert_array_equal(data.array("close"), frame.to_numpy())
    assert data.array() is data.array("close")
    frame.index = frame.index.as_unit("ns")
    pd.testing.assert_frame_equal(data.frame("close"), frame, check_freq=False,
                                  check_column_type=False)


def test_arrays_are_read_only_and_copied():
    values = np.array(GOOD)
    data = MarketData({"close": values}, pd.date_range("2024-01-01", periods=3), ["A", "B"])
    values[0, 0] = 999.0  # the caller's array is not shared
    assert data.array("close")[0, 0] == 10.0
    with pytest.raises(ValueError, match="read-only"):
        data.array("close")[0, 0] = 1.0


def test_from_series_is_one_asset():
    series = pd.Series([1.0, 2.0], index=pd.date_range("2024-01-01", periods=2), name="XYZ")
    data = MarketData.from_frame(series)
    assert list(data.assets) == ["XYZ"]
    assert data.shape == (2, 1)


def test_from_frames_several_fields_and_alignment_modes():
    close = wide(GOOD)
    volume = wide([[1, 2], [3, 4], [5, 6]])
    data = MarketData.from_frames({"close": close, "volume": volume})
    assert data.fields == ("close", "volume")
    np.testing.assert_array_equal(data.array("volume"), volume.to_numpy())

    shorter = volume.iloc[:2]
    with pytest.raises(MisalignedFieldsError, match="lacks 1 dates.*align='inner'"):
        MarketData.from_frames({"close": close, "volume": shorter})
    other_assets = volume.rename(columns={"B": "C"})
    with pytest.raises(MisalignedFieldsError, match="different assets"):
        MarketData.from_frames({"close": close, "volume": other_assets})
    inner = MarketData.from_frames({"close": close, "volume": shorter}, align="inner")
    assert inner.shape == (2, 2)
    outer = MarketData.from_frames({"close": close, "volume": other_assets}, align="outer")
    assert list(outer.assets) == ["A", "B", "C"]
    assert np.isnan(outer.array("volume")[:, 1]).all()  # B has no volume


def test_from_long_pivots_any_row_order():
    rows = [("2024-01-02", "B", 21.0, 5), ("2024-01-01", "A", 10.0, 1),
            ("2024-01-01", "B", 20.0, 2), ("2024-01-02", "A", 11.0, 3)]
    table = pd.DataFrame(rows, columns=["date", "asset", "close", "volume"])
    data = MarketData.from_long(table)
    assert list(data.assets) == ["A", "B"]
    np.testing.assert_array_equal(data.array("close"), [[10.0, 20.0], [11.0, 21.0]])
    np.testing.assert_array_equal(data.array("volume"), [[1, 2], [3, 5]])
    with pytest.raises(DuplicateDatesError, match="drop_duplicates"):
        MarketData.from_long(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(MissingFieldError, match="from_long\\(table, date=..."):
        MarketData.from_long(table.rename(columns={"date": "day"}))


def test_from_ohlcv_normalises_column_names():
    frame = pd.DataFrame({"Open": [1.0, 2.0], "High": [2.0, 3.0], "Low": [0.5, 1.5],
                          "Close": [1.5, 2.5], "Adj Close": [1.4, 2.4], "Volume": [100, 200]},
                         index=pd.date_range("2024-01-01", periods=2))
    data = MarketData.from_ohlcv(frame, "XYZ")
    assert data.fields == ("open", "high", "low", "close", "adj_close", "volume")
    assert list(data.assets) == ["XYZ"]
    assert data.array("volume").dtype == np.float64


@pytest.mark.filterwarnings("ignore:Could not infer format")
def test_csv_and_parquet_files(tmp_path):
    frame = wide(GOOD)
    frame.index.name = "Date"
    frame.to_csv(tmp_path / "wide.csv")
    data = MarketData.read_csv(tmp_path / "wide.csv")
    np.testing.assert_array_equal(data.array("close"), frame.to_numpy())
    assert data.index.equals(frame.index)

    data.to_parquet(tmp_path / "panel.parquet")
    again = MarketData.read_parquet(tmp_path / "panel.parquet")
    assert again.content_hash == data.content_hash

    long = data.to_long()
    long.to_csv(tmp_path / "long.csv", index=False)
    assert MarketData.read_csv(tmp_path / "long.csv").content_hash == data.content_hash

    ohlcv = pd.DataFrame({"Open": [1.0, 2.0], "High": [2.0, 3.0], "Low": [0.5, 1.5],
                          "Close": [1.5, 2.5], "Volume": [100, 200]},
                         index=pd.date_range("2024-01-01", periods=2, name="Date"))
    ohlcv.to_csv(tmp_path / "XYZ.csv.gz")
    single = MarketData.read_csv(tmp_path / "XYZ.csv.gz")
    assert list(single.assets) == ["XYZ"] and "volume" in single

    pd.DataFrame({"when": ["x", "y"], "A": [1.0, 2.0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(NonDatetimeIndexError, match="first column 'when' must hold dates"):
        MarketData.read_csv(tmp_path / "bad.csv")


def test_timezone_aware_panel_keeps_its_zone_and_slices_by_naive_dates():
    frame = wide(GOOD)
    frame.index = frame.index.tz_localize("America/New_York")
    data = MarketData.from_frame(frame)
    assert str(data.index.tz) == "America/New_York"
    assert data.slice("2024-01-02", None).n_dates == 2
    naive = MarketData.from_frame(wide(GOOD))
    assert naive.content_hash != data.content_hash  # the zone is part of the content


# --- validation: each error names the problem and the fix ---------------------------------


@pytest.mark.parametrize(
    ("frame", "error", "fix"),
    [
        (wide(GOOD).iloc[[1, 0, 2]], UnsortedDatesError, r"df\.sort_index\(\)"),
        (wide(GOOD).iloc[[0, 1, 1, 2]], DuplicateDatesError, r"duplicated\(keep='last'\)"),
        (wide(GOOD).set_axis(["a", "b", "c"]), NonDatetimeIndexError, r"pd\.to_datetime"),
        (wide(GOOD).set_axis([1, 2, 3]), NonDatetimeIndexError, r"pd\.to_datetime"),
        (wide([[1.0, np.inf], [2.0, 3.0]]), NonFiniteValueError, r"replace\(\[np\.inf"),
        (wide([[1.0, -np.inf], [2.0, 3.0]]), NonFiniteValueError, r"NaN \(no data\)"),
        (wide([[1.0, 0.0], [2.0, 3.0]]), NonPositivePriceError, r"set missing prices to NaN"),
        (wide([[1.0, -2.0], [2.0, 3.0]]), NonPositivePriceError, r"price_fields="),
        (wide(np.empty((0, 2))), EmptyDataError, r"at least one bar"),
        (pd.DataFrame(index=pd.date_range("2024-01-01", periods=2)), EmptyDataError,
         r"at least one asset"),
        (pd.DataFrame({"A": ["x", "y"]}, index=pd.date_range("2024-01-01", periods=2)),
         NonNumericFieldError, r"pd\.to_numeric, errors='coerce'"),
    ],
)
def test_validation_errors_name_the_fix(frame, error, fix):
    with pytest.raises(error, match=fix) as info:
        MarketData.from_frame(frame)
    assert isinstance(info.value, DataError)
    assert isinstance(info.value, ValueError)


def test_error_message_names_the_offending_value():
    with pytest.raises(NonPositivePriceError, match=r"first -2\.0 on 2024-01-01 for 'B'"):
        MarketData.from_frame(wide([[1.0, -2.0], [2.0, 3.0]]))
    with pytest.raises(UnsortedDatesError, match="2024-01-01.*position 1"):
        MarketData.from_frame(wide(GOOD).iloc[[1, 0, 2]])


def test_volume_may_be_zero_but_not_infinite():
    frames = {"close": wide(GOOD), "volume": wide([[0.0, 1.0], [0.0, 2.0], [3.0, 0.0]])}
    assert MarketData.from_frames(frames).fields == ("close", "volume")
    frames["volume"] = wide([[0.0, np.inf], [0.0, 2.0], [3.0, 0.0]])
    with pytest.raises(NonFiniteValueError, match="field 'volume'"):
        MarketData.from_frames(frames)


def test_mixed_and_mismatched_time_zones():
    stamps = [pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="Asia/Tokyo")]
    mixed = pd.DataFrame({"A": [1.0, 2.0]}, index=pd.Index(stamps, dtype=object))
    with pytest.raises(TimezoneError, match="mixes time zones.*utc=True"):
        MarketData.from_frame(mixed)
    utc = wide(GOOD)
    utc.index = utc.index.tz_localize("UTC")
    with pytest.raises(TimezoneError, match="disagree on the time zone.*tz_convert"):
        MarketData.from_frames({"close": utc, "volume": wide(GOOD)})


def test_misaligned_array_shape_and_duplicate_assets():
    index = pd.date_range("2024-01-01", periods=3)
    with pytest.raises(MisalignedFieldsError, match=r"shape \(2, 2\).*3 dates x 2 assets"):
        MarketData({"close": np.ones((2, 2))}, index, ["A", "B"])
    with pytest.raises(MisalignedFieldsError, match="unique.*'A'"):
        MarketData({"close": np.ones((3, 2))}, index, ["A", "A"])
    with pytest.raises(EmptyDataError, match="at least one field"):
        MarketData({}, index, ["A"])


def test_missing_field_lists_the_fields(panel):
    with pytest.raises(MissingFieldError, match=r"no field 'open'.*fields: \['close'\]"):
        panel["open"]
    with pytest.raises(MissingFieldError, match=r"no field 'open'.*fields: \['close'\]"):
        panel.array("open")
    with pytest.raises(AttributeError, match="no attribute or field 'opn'"):
        panel.opn  # noqa: B018


# --- content hash --------------------------------------------------------------------------


def test_hash_is_memoized_and_covers_every_part(monkeypatch):
    import foldwise.data as data_module

    calls = []
    original = data_module.hash_arrays
    monkeypatch.setattr(data_module, "hash_arrays",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    data = MarketData.from_frame(wide(GOOD))
    first = data.content_hash
    assert data.content_hash == first and len(calls) == 1

    def rebuilt(frame=None, field="close"):
        return MarketData.from_frame(wide(GOOD) if frame is None else frame, field).content_hash

    assert rebuilt() == first  # same content, new object: same hash
    changed = wide(GOOD)
    changed.iloc[2, 0] = 12.000000001
    assert rebuilt(changed) != first                          # a value
    assert rebuilt(wide(GOOD, start="2024-01-02")) != first   # the dates
    assert rebuilt(wide(GOOD, columns=("A", "C"))) != first   # an asset label
    assert rebuilt(field="open") != first                     # a field name
    nan_moved = wide([[10.0, 20.0], [11.0, 21.0], [np.nan, 12.0]])
    assert rebuilt(nan_moved) != first


@pytest.mark.slow
def test_one_value_in_the_middle_of_a_100mb_panel_changes_the_hash():
    n_dates, n_assets = 5_000, 2_621  # 13.1 M float64 = 100 MB
    values = np.random.default_rng(0).uniform(1.0, 2.0, size=(n_dates, n_assets))
    index = pd.bdate_range("2000-01-03", periods=n_dates)
    assets = [f"S{i}" for i in range(n_assets)]
    before = MarketData({"close": values}, index, assets)
    assert before.nbytes >= 100 * 10**6
    values[n_dates // 2, n_assets // 2] = np.nextafter(values[n_dates // 2, n_assets // 2], 3.0)
    after = MarketData({"close": values}, index, assets)
    assert before.content_hash != after.content_hash


# --- slices --------------------------------------------------------------------------------


def test_slice_is_an_inclusive_view_with_its_own_hash(panel):
    part = panel.slice(panel.index[10], panel.index[19])
    assert part.n_dates == 10
    assert part.index[0] == panel.index[10] and part.index[-1] == panel.index[19]
    assert np.shares_memory(part.array("close"), panel.array("close"))
    assert part.content_hash != panel.content_hash
    copy = MarketData({"close": panel.array("close")[10:20]}, panel.index[10:20], panel.assets)
    assert part.content_hash == copy.content_hash
    assert panel.slice() is panel
    assert panel.slice("1999-01-01", panel.index[0]).n_dates == 1
    with pytest.raises(EmptyDataError, match="no bar between"):
        panel.slice("1990-01-01", "1990-12-31")


def test_islice_and_select(panel):
    assert panel.islice(5, 8).n_dates == 3
    with pytest.raises(EmptyDataError):
        panel.islice(8, 5)
    sub = panel.select(assets=["A2", "A0"])
    np.testing.assert_array_equal(sub.array("close"), panel.array("close")[:, [2, 0]])
    with pytest.raises(MissingFieldError, match=r"unknown asset\(s\) \['ZZZ'\]"):
        panel.select(assets=["ZZZ"])


def test_returns_are_memoized_simple_returns():
    data = make_panel(50, 3)
    returns = data.returns()
    assert returns is data.returns()
    expected = data.frame("close").pct_change().to_numpy()
    np.testing.assert_allclose(returns, expected, rtol=1e-14, equal_nan=True)
    assert not returns.flags.writeable


def test_repr_is_readable(panel):
    assert repr(panel) == "MarketData(300 dates 2020-01-01..2021-02-23, 4 assets, fields=['close'])"


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_the_data_stays_read_only_in_a_process_it_is_sent_to(protocol):
    """Pickle protocols below 5 give arrays back writeable: unpickling freezes them again."""
    data = make_panel(40, 3)
    returns, content_hash = data.returns(), data.content_hash
    copy = pickle.loads(pickle.dumps(data, protocol=protocol))
    assert copy.content_hash == content_hash
    np.testing.assert_array_equal(copy.array("close"), data.array("close"))
    np.testing.assert_array_equal(copy.returns(), returns)
    assert not copy.array("close").flags.writeable and not copy.returns().flags.writeable
    close = copy["close"]
    with pytest.raises(ValueError, match="read-only"):
        close.iloc[0, 0] = 1.0
