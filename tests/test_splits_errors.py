"""Every splitter error names the cause, the numbers and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import foldwise
from foldwise.errors import (
    CalendarSpanError,
    CombinatorialExplosionError,
    DuplicateDatesError,
    EmptyTrainError,
    FoldwiseError,
    NoFoldsError,
    SplitError,
    UnsortedDatesError,
)
from foldwise.splits import CombinatorialPurgedKFold, LabelEnds, PurgedKFold, WalkForward


@pytest.fixture(scope="module")
def goog():
    return foldwise.datasets.load_goog()


def test_error_classes_are_foldwise_and_value_errors():
    for cls in (SplitError, CalendarSpanError, NoFoldsError, EmptyTrainError,
                CombinatorialExplosionError):
        assert issubclass(cls, FoldwiseError)
        assert issubclass(cls, ValueError)


# --- settings alone (raised by __init__) -----------------------------------------------------


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"train": 0, "test": 5}, r"train=0 bars must be >= 1 .*e\.g\. train=20"),
    ({"train": 10, "test": -5}, r"test=-5 bars must be >= 1"),
    ({"train": 10, "test": 5, "step": 0}, r"step=0 bars must be >= 1"),
    ({"train": 2.5, "test": 5}, r"train=2\.5 is a float.*Did you mean train=2\?"),
    ({"train": True, "test": 5}, r"train=True is a bool"),
    ({"train": 10, "test": 5, "purge": -1}, r"purge=-1 bars must be >= 0"),
    ({"train": 10, "test": 5, "embargo": 1.5}, r"fraction of the sample.*\[0, 1\).*int"),
    ({"train": 10, "test": 5, "anchored": "yes"}, r"anchored='yes' must be True or False"),
    ({"train": 10, "test": 5, "anchored": True, "min_train": 3},
     r"rolling windows only.*Pass train=3 instead"),
    ({"train": 5, "test": 5, "min_train": 8}, r"min_train=8 is longer than train=5.*Lower"),
    ({"train": "2Y", "test": "1M", "min_train": "3Y"}, r"min_train='3Y' is longer"),
])
def test_walk_forward_settings(kwargs, pattern):
    with pytest.raises(SplitError, match=pattern):
        WalkForward(**kwargs)


@pytest.mark.parametrize(("value", "pattern"), [
    ("3X", r"train='3X' is not a size foldwise can read.*'3Y', '6M', '2W', '10D'"),
    ("6m", r"ambiguous: write '6M' for months or '6min' for minutes"),
    ("0D", r"train='0D' is not a positive span"),
    (pd.Timedelta(days=-3), r"is not a positive span"),
    (pd.DateOffset(months=-1), r"is not a positive span"),
    ([1, 2], r"has type list.*number of bars"),
])
def test_unreadable_spans(value, pattern):
    with pytest.raises(CalendarSpanError, match=pattern):
        WalkForward(value, 5)


def test_spans_in_every_form_are_accepted():
    for value in ("3Y", "6M", "2W", "10D", "10d", "12h", pd.DateOffset(months=2),
                  pd.Timedelta(days=3), np.timedelta64(3, "D"), pd.offsets.MonthEnd(1)):
        WalkForward(value, 5)


@pytest.mark.parametrize(("factory", "pattern"), [
    (lambda: PurgedKFold(1), r"n_splits=1 must be >= 2"),
    (lambda: PurgedKFold(2.0), r"n_splits=2\.0 must be an int"),
    (lambda: CombinatorialPurgedKFold(4, 4), r"n_test_groups=4 must be smaller than n_groups=4"),
    (lambda: CombinatorialPurgedKFold(4, 0), r"n_test_groups=0 must be >= 1"),
])
def test_kfold_settings(factory, pattern):
    with pytest.raises(SplitError, match=pattern):
        factory()


def test_combinatorial_explosion_explains_and_offers_alternatives():
    with pytest.raises(CombinatorialExplosionError) as info:
        CombinatorialPurgedKFold(20, 10)
    message = str(info.value)
    assert "C(20, 10) = 184,756 splits (92,378 paths)" in message
    assert "max_splits=1,000" in message
    assert "(n_groups=20, n_test_groups=2) makes 190 splits and 19 paths" in message
    assert "(n_groups=13, n_test_groups=10) makes 286 splits and 220 paths" in message
    assert "raise max_splits to 184756" in message
    assert CombinatorialPurgedKFold(20, 10, max_splits=200_000).n_splits == 184_756


# --- settings against the data (raised by split) ----------------------------------------------


def test_train_plus_test_longer_than_the_history():
    with pytest.raises(NoFoldsError) as info:
        list(WalkForward(80, 30).split(np.zeros(100)))
    message = str(info.value)
    assert "makes no fold on 100 bars (no dates)" in message
    assert "train=80 bars" in message
    assert "(30 bars)" in message
    assert "shorten train or test" in message
    assert "partial_test=True" in message
    # with a partial window allowed, 80 + 20 fits
    assert WalkForward(80, 30, partial_test=True).get_n_splits(np.zeros(100)) == 1


def test_train_alone_longer_than_the_history_in_calendar_terms(goog):
    with pytest.raises(NoFoldsError) as info:
        list(WalkForward("10Y", "1Y").split(goog))
    message = str(info.value)
    assert "2148 bars 2004-08-19..2013-03-01" in message
    assert "train='10Y'" in message
    assert "(1Y)" in message
    assert "Use more data" in message


def test_min_train_is_named_when_it_sets_the_first_window():
    with pytest.raises(NoFoldsError, match=r"min_train=50 bars.*shorten min_train or test"):
        list(WalkForward(60, 10, min_train=50).split(np.zeros(55)))


def test_purge_eats_the_training_window(goog):
    with pytest.raises(EmptyTrainError) as info:
        list(WalkForward(5, 3, purge=5).split(goog))
    message = str(info.value)
    assert "fold 0 of WalkForward(train=5" in message
    assert "(2004-08-19..2004-08-25, 5 bars) loses 5 bars to purge=5 and 0 to embargo=0" in message
    assert "Use a smaller purge or embargo, or a longer training window" in message


def test_purge_and_embargo_eat_a_kfold_training_set():
    with pytest.raises(EmptyTrainError, match=r"loses 2 bars to purge=2 and 1 to embargo=2"):
        list(PurgedKFold(2, purge=2, embargo=2).split(np.zeros(6)))


def test_span_shorter_than_one_bar(goog):
    weekly = goog.frame().resample("W").last()
    with pytest.raises(CalendarSpanError) as info:
        list(WalkForward("1Y", "2D").split(weekly))
    message = str(info.value)
    assert "test='2D' (2 days) is shorter than one bar" in message
    assert "7 days apart" in message
    assert "at least 7 days" in message
    with pytest.raises(CalendarSpanError, match=r"purge='12h' \(0 days 12:00:00\) is shorter"):
        list(PurgedKFold(3, purge="12h").split(goog))


def test_span_without_dates():
    with pytest.raises(CalendarSpanError) as info:
        list(WalkForward("1Y", 5).split(np.zeros((300, 2))))
    message = str(info.value)
    assert "train='1Y' is a calendar span, but X (ndarray, 300 bars (no dates))" in message
    assert "DatetimeIndex" in message
    assert "number of bars" in message


def test_too_many_groups_for_the_bars():
    with pytest.raises(NoFoldsError, match=r"5 groups, but X has only 3 bars.*at most 3 groups"):
        list(PurgedKFold(5).split(np.zeros(3)))


def test_label_ends_of_the_wrong_length_or_direction(goog):
    with pytest.raises(SplitError, match=r"3 label ends were given but X has 5 bars.*exactly one"):
        list(PurgedKFold(2, purge=LabelEnds(np.array([1, 2, 3]))).split(np.zeros(5)))
    with pytest.raises(SplitError, match=r"label of bar 2 \(bar 2\) ends before the bar itself"):
        list(PurgedKFold(2, purge=LabelEnds(np.array([0, 1, 1, 3, 4]))).split(np.zeros(5)))
    shifted = LabelEnds(goog.index - pd.Timedelta(days=3))
    with pytest.raises(SplitError, match=r"label of 2004-08-19 \(bar 0\) ends before the bar itself \(at bar -1\)"):
        list(PurgedKFold(3, purge=shifted).split(goog))
    with pytest.raises(SplitError, match=r"label ends are dates but X .* has no dates"):
        list(PurgedKFold(3, purge=LabelEnds(goog.index)).split(np.zeros(goog.n_dates)))
    with pytest.raises(SplitError, match=r"missing \(NaT\)"):
        LabelEnds(pd.DatetimeIndex(["2024-01-01", None]))
    with pytest.raises(SplitError, match=r"one date or one integer position per bar"):
        LabelEnds(np.array([0.5, 1.5]))


def test_label_ends_series_indexed_by_other_dates(goog):
    ends = pd.Series(goog.index, index=goog.index + pd.Timedelta(days=1))
    with pytest.raises(SplitError, match=r"indexed by other dates.*reindex"):
        list(PurgedKFold(3, purge=LabelEnds(ends)).split(goog))


def test_unsorted_or_duplicate_dates_in_a_frame():
    dates = pd.DatetimeIndex(["2024-01-02", "2024-01-01", "2024-01-03"])
    with pytest.raises(UnsortedDatesError, match="sort_index"):
        list(PurgedKFold(2).split(pd.Series([1.0, 2.0, 3.0], index=dates)))
    dates = pd.DatetimeIndex(["2024-01-01", "2024-01-01", "2024-01-03"])
    with pytest.raises(DuplicateDatesError, match="duplicate"):
        list(PurgedKFold(2).split(pd.Series([1.0, 2.0, 3.0], index=dates)))


def test_get_n_splits_without_data():
    with pytest.raises(SplitError, match=r"needs X.*get_n_splits\(X\)"):
        WalkForward(10, 5).get_n_splits()
    assert PurgedKFold(4).get_n_splits() == 4
    assert CombinatorialPurgedKFold(6, 2).get_n_splits() == 15


def test_no_data_at_all():
    with pytest.raises(SplitError, match="X is None"):
        list(PurgedKFold(2).split(None))
    with pytest.raises(SplitError, match="cannot count the bars"):
        list(PurgedKFold(2).split(object()))
