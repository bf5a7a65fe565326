"""WalkForward: windows, calendar spans, purge, equivalence with scikit-learn."""

from __future__ import annotations

import itertools
from bisect import bisect_left

import numpy as np
import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import TimeSeriesSplit

import foldwise
from foldwise.errors import EmptyTrainError, NoFoldsError
from foldwise.splits import LabelEnds, WalkForward

from ._splits_reference import horizon_ends, purge_embargo


def splits(splitter, X):
    return [(train.tolist(), test.tolist()) for train, test in splitter.split(X)]


# --- bar windows ---------------------------------------------------------------------------


def test_rolling_windows_by_hand():
    assert splits(WalkForward(4, 2), np.zeros(10)) == [
        ([0, 1, 2, 3], [4, 5]),
        ([2, 3, 4, 5], [6, 7]),
        ([4, 5, 6, 7], [8, 9]),
    ]


def test_anchored_windows_by_hand():
    assert splits(WalkForward(4, 2, anchored=True), np.zeros(10)) == [
        ([0, 1, 2, 3], [4, 5]),
        ([0, 1, 2, 3, 4, 5], [6, 7]),
        ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9]),
    ]


def test_step_smaller_than_test_overlaps_test_windows():
    assert splits(WalkForward(3, 3, step=1), np.zeros(8)) == [
        ([0, 1, 2], [3, 4, 5]),
        ([1, 2, 3], [4, 5, 6]),
        ([2, 3, 4], [5, 6, 7]),
    ]


def test_step_larger_than_test_leaves_gaps():
    assert splits(WalkForward(2, 1, step=3), np.zeros(9)) == [
        ([0, 1], [2]), ([3, 4], [5]), ([6, 7], [8])]


def test_min_train_grows_windows_up_to_train():
    assert splits(WalkForward(4, 1, min_train=2), np.zeros(7)) == [
        ([0, 1], [2]),
        ([0, 1, 2], [3]),
        ([0, 1, 2, 3], [4]),
        ([1, 2, 3, 4], [5]),
        ([2, 3, 4, 5], [6]),
    ]


def test_partial_last_test_window_dropped_unless_asked():
    assert splits(WalkForward(4, 3), np.zeros(12))[-1] == ([3, 4, 5, 6], [7, 8, 9])
    kept = splits(WalkForward(4, 3, partial_test=True), np.zeros(12))
    assert kept[-1] == ([6, 7, 8, 9], [10, 11])


def test_partial_test_keeps_only_the_first_shortened_window():
    assert splits(WalkForward(2, 3, step=1, partial_test=True), np.zeros(6)) == [
        ([0, 1], [2, 3, 4]), ([1, 2], [3, 4, 5]), ([2, 3], [4, 5])]


def test_purge_removes_the_horizon_before_the_test_window():
    # Labels 2 bars long: bars 4 and 5 reach into the test window starting at 6.
    assert splits(WalkForward(6, 2, purge=2), np.zeros(8)) == [([0, 1, 2, 3], [6, 7])]


def test_embargo_removes_nothing_in_walk_forward():
    assert splits(WalkForward(6, 2, embargo=3), np.zeros(10)) == splits(
        WalkForward(6, 2), np.zeros(10))


def test_purge_eating_the_training_window_is_refused():
    with pytest.raises(EmptyTrainError, match=r"loses 3 bars to purge=3"):
        list(WalkForward(3, 2, purge=3).split(np.zeros(10)))


# --- scikit-learn equivalence --------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(k=st.integers(2, 6), test=st.integers(1, 8), gap=st.integers(0, 5),
       max_train=st.one_of(st.none(), st.integers(1, 30)), first_extra=st.integers(1, 30))
def test_reproduces_sklearn_time_series_split(k, test, gap, max_train, first_extra):
    """TimeSeriesSplit(k, max_train_size, test_size, gap) puts k test windows at the end of
    the data; the same folds come from WalkForward with the window including the gap, the
    gap purged, and the first test window where scikit-learn puts it."""
    first = gap + first_extra  # bars before the first test window
    n = first + k * test
    reference = TimeSeriesSplit(n_splits=k, max_train_size=max_train, test_size=test, gap=gap)
    if max_train is None:
        ours = WalkForward(first, test, anchored=True, purge=gap)
    elif first < max_train + gap:
        ours = WalkForward(max_train + gap, test, purge=gap, min_train=first)
    else:
        assume(first == max_train + gap)
        ours = WalkForward(max_train + gap, test, purge=gap)
    assert splits(ours, np.zeros(n)) == splits(reference, np.zeros(n))
    assert ours.get_n_splits(np.zeros(n)) == reference.get_n_splits(np.zeros(n)) == k


def test_reproduces_sklearn_rolling_case():
    X = np.zeros(3 + 2 + 4 * 5)
    reference = TimeSeriesSplit(n_splits=4, max_train_size=3, test_size=5, gap=2)
    assert splits(WalkForward(5, 5, purge=2), X) == splits(reference, X)


# --- properties ----------------------------------------------------------------------------


@st.composite
def walk_forward_settings(draw):
    n = draw(st.integers(1, 120))
    train = draw(st.integers(1, 40))
    return dict(
        n=n,
        train=train,
        test=draw(st.integers(1, 20)),
        step=draw(st.one_of(st.none(), st.integers(1, 20))),
        anchored=draw(st.booleans()),
        purge=draw(st.integers(0, 10)),
        embargo=draw(st.integers(0, 5)),
        min_train=draw(st.one_of(st.none(), st.integers(1, train))),
        partial_test=draw(st.booleans()),
    )


@pytest.mark.slow  # seconds: hundreds of generated cases (quick loop: -m 'not slow')
@settings(max_examples=300, deadline=None)
@given(walk_forward_settings())
def test_walk_forward_properties(params):
    n = params.pop("n")
    if params["anchored"]:
        params["min_train"] = None
    wf = WalkForward(**params)
    try:
        folds = wf.folds(np.arange(n, dtype=float))
    except (NoFoldsError, EmptyTrainError):
        first = params["min_train"] or params["train"]
        # No fold only when the first window cannot fit; no training bar only when the purge
        # covers the whole window.
        assert first >= n or (first + params["test"] > n and not params["partial_test"]) \
            or params["purge"] >= 1
        return
    test, step, h = params["test"], params["step"] or params["test"], params["purge"]
    assert wf.get_n_splits(np.zeros(n)) == len(folds) == len(list(wf.split(np.zeros(n))))
    ends = horizon_ends(n, h)
    first = params["min_train"] or params["train"]
    previous_train = None
    for j, fold in enumerate(folds):
        start = first + j * step
        # test window: `test` bars from its start, shorter only for the last, partial one
        expected_stop = min(start + test, n)
        assert fold.test.tolist() == list(range(start, expected_stop))
        if expected_stop - start < test:
            assert params["partial_test"]
            assert j == len(folds) - 1
        # every training bar comes before every test bar, and no label reaches the test
        assert fold.train.max() < fold.test.min()
        assert all(ends[i] < start for i in fold.train)
        # the purge removed exactly the bars whose label reaches the test window
        begin = 0 if params["anchored"] else max(0, start - params["train"])
        train, purged, embargoed = purge_embargo(n, range(begin, start), fold.test, ends,
                                                 params["embargo"])
        assert fold.train.tolist() == train
        assert fold.purged.tolist() == purged == list(range(max(begin, start - h), start))
        assert fold.embargoed.tolist() == embargoed == []
        if params["anchored"] and previous_train is not None:
            assert set(previous_train) <= set(fold.train.tolist())
        previous_train = fold.train.tolist()
    # the folds stop only when the next test window would not fit (or after a partial one)
    next_start = first + len(folds) * step
    last_partial = folds[-1].n_test < test
    assert next_start >= n or (next_start + test > n
                               and (not params["partial_test"] or last_partial))


# --- calendar spans ------------------------------------------------------------------------


def business_days(start="2010-01-04", end="2014-12-31"):
    dates = pd.bdate_range(start, end)
    return pd.DataFrame({"x": np.arange(len(dates), dtype=float)}, index=dates)


_UNITS = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}


def delta(text, times=1):
    return relativedelta(**{_UNITS[text[-1]]: int(text[:-1]) * times})


def check_calendar_windows(frame, train, test, step=None, anchored=False, min_train=None,
                           purge=0):
    """Each test window is the bars dated in [d0 + first + j*step, ... + test), with the date
    arithmetic done independently by dateutil; a rolling training window starts at the first
    bar on or after its test window's nominal start minus train; the purge removes the last
    `purge` bars before the test window. Returns the number of folds."""
    dates = list(frame.index)
    d0 = dates[0].to_pydatetime()
    first = min_train or train
    try:
        folds = WalkForward(train, test, step=step, anchored=anchored, min_train=min_train,
                            purge=purge).folds(frame)
    except (NoFoldsError, EmptyTrainError):
        folds = []
    step = step or test
    for j, fold in enumerate(folds):
        start = d0 + delta(first) + delta(step, j)
        stop = start + delta(test)
        expected = list(range(bisect_left(dates, start), bisect_left(dates, stop)))
        assert fold.test.tolist() == expected
        begin = 0 if anchored else bisect_left(dates, start - delta(train))
        window = list(range(begin, expected[0]))
        assert fold.train.tolist() == window[:max(0, len(window) - purge)]
        assert fold.test_start == dates[expected[0]]
        assert fold.test_end == dates[expected[-1]]
    # no further window fits: the next one would end after the last date
    after = d0 + delta(first) + delta(step, len(folds)) + delta(test)
    assert after > dates[-1] or not folds
    return len(folds)


@pytest.mark.parametrize(("train", "test", "step", "anchored", "min_train"), [
    ("1Y", "3M", None, False, None),
    ("2Y", "6M", "3M", False, None),
    ("18M", "1M", None, True, None),
    ("52W", "4W", None, False, None),
    ("300D", "30D", "60D", False, None),
    ("3Y", "6M", None, False, "1Y"),
])
def test_calendar_windows_match_relativedelta_dates(train, test, step, anchored, min_train):
    assert check_calendar_windows(business_days(), train, test, step, anchored, min_train) >= 2


@pytest.mark.slow  # seconds: generated calendars (quick loop: -m 'not slow')
@settings(max_examples=40, deadline=None)
@given(start=st.dates(pd.Timestamp("2000-01-01").date(), pd.Timestamp("2010-12-31").date()),
       month_end=st.booleans(), years=st.integers(1, 4),
       train=st.sampled_from(["6M", "1Y", "13M", "40W"]),
       test=st.sampled_from(["1M", "2M", "3M", "5W", "20D"]),
       step=st.sampled_from([None, "1M", "2W"]), anchored=st.booleans(),
       purge=st.integers(0, 3))
def test_calendar_windows_property(start, month_end, years, train, test, step, anchored, purge):
    first = pd.Timestamp(start) + (pd.offsets.MonthEnd(0) if month_end else pd.Timedelta(0))
    dates = pd.bdate_range(first, first + pd.DateOffset(years=years))
    frame = pd.DataFrame({"x": np.arange(len(dates), dtype=float)}, index=dates)
    check_calendar_windows(frame, train, test, step, anchored, purge=purge)


def test_calendar_purge_reaches_by_date():
    frame = business_days("2020-01-01", "2020-12-31")
    days = WalkForward("6M", "1M", purge="7D").folds(frame)
    ends = LabelEnds(frame.index + pd.Timedelta(days=7))
    explicit = WalkForward("6M", "1M", purge=ends).folds(frame)
    assert [f.train.tolist() for f in days] == [f.train.tolist() for f in explicit]
    # seven calendar days of business days: 5 bars purged before each test window
    assert {f.purged.size for f in days} == {5}


def test_mixed_bars_and_spans():
    frame = business_days("2020-01-01", "2020-12-31")
    folds = WalkForward(100, "1M").folds(frame)
    first = folds[0]
    assert first.train.tolist() == list(range(100))
    assert first.test_start == frame.index[100]
    month_end = frame.index[100] + pd.DateOffset(months=1)
    assert first.test.tolist() == list(range(100, int(frame.index.searchsorted(month_end))))


def test_goog_three_year_rolling_windows():
    data = foldwise.datasets.load_goog()
    folds = WalkForward("3Y", "6M", purge=5).folds(data)
    table = folds.describe()
    assert list(table.columns) == ["fold", "train_start", "train_end", "test_start", "test_end",
                                   "n_train", "n_test", "purged", "embargoed"]
    assert (table["purged"] == 5).all()
    assert table["n_test"].between(120, 130).all()
    # test windows tile the history: each starts the bar after the previous one ends
    for before, after in itertools.pairwise(folds):
        assert after.test[0] == before.test[-1] + 1
