"""PurgedKFold and CombinatorialPurgedKFold: groups, purge and embargo, paths."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import KFold

from foldwise.errors import EmptyTrainError, NoFoldsError
from foldwise.splits import CombinatorialPurgedKFold, LabelEnds, PurgedKFold

from ._splits_reference import embargo_bars, horizon_ends, kfold_groups, purge_embargo

# --- PurgedKFold ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(10, 2), (10, 3), (17, 5), (5, 5)])
def test_without_purge_equals_sklearn_kfold(n, k):
    ours = [(a.tolist(), b.tolist()) for a, b in PurgedKFold(k).split(np.zeros(n))]
    reference = [(a.tolist(), b.tolist()) for a, b in KFold(k).split(np.zeros(n))]
    assert ours == reference


def test_purge_and_embargo_on_both_sides_by_hand():
    # 12 bars, 3 groups of 4; labels 2 bars long; embargo 1 bar after what a window covers.
    folds = PurgedKFold(3, purge=2, embargo=1).folds(np.zeros(12))
    middle = folds[1]  # test 4..7, labels of 6 and 7 reach 8 and 9
    assert middle.test.tolist() == [4, 5, 6, 7]
    assert middle.purged.tolist() == [2, 3, 8, 9]
    assert middle.embargoed.tolist() == [10]
    assert middle.train.tolist() == [0, 1, 11]


def test_embargo_fraction_is_ceil_of_the_sample():
    as_fraction = PurgedKFold(4, embargo=0.05).folds(np.zeros(50))  # ceil(2.5) = 3 bars
    as_bars = PurgedKFold(4, embargo=3).folds(np.zeros(50))
    assert [f.train.tolist() for f in as_fraction] == [f.train.tolist() for f in as_bars]
    assert as_fraction[0].embargoed.tolist() == [13, 14, 15]


def test_label_ends_as_dates_purge_variable_horizons():
    dates = pd.bdate_range("2024-01-01", periods=10)
    X = pd.DataFrame({"x": np.arange(10.0)}, index=dates)
    # bar 1's label runs to bar 6 (into the second group), the others end on their own bar
    ends = pd.Series(dates, index=dates)
    ends.iloc[1] = dates[6]
    folds = PurgedKFold(2, purge=LabelEnds(ends)).folds(X)
    assert folds[1].test.tolist() == [5, 6, 7, 8, 9]
    assert folds[1].purged.tolist() == [1]
    # in the first fold bar 1 is tested, and its label covers bars 5 and 6 of the training set
    assert folds[0].purged.tolist() == [5, 6]


def test_embargo_eating_the_training_set_is_refused():
    with pytest.raises(EmptyTrainError, match=r"to embargo=8\b.*smaller purge or embargo"):
        list(PurgedKFold(2, embargo=8).split(np.zeros(10)))


@st.composite
def kfold_settings(draw):
    n = draw(st.integers(2, 80))
    return dict(n=n, k=draw(st.integers(2, min(n, 8))), purge=draw(st.integers(0, 6)),
                embargo=draw(st.one_of(st.integers(0, 6), st.floats(0, 0.2))))


@settings(max_examples=200, deadline=None)
@given(kfold_settings())
def test_purged_kfold_matches_brute_force(params):
    n, k, h, embargo = params["n"], params["k"], params["purge"], params["embargo"]
    cv = PurgedKFold(k, purge=h, embargo=embargo)
    groups = kfold_groups(n, k)
    expected = [purge_embargo(n, range(n), g, horizon_ends(n, h), embargo_bars(n, embargo))
                for g in groups]
    if any(not train for train, _, _ in expected):
        with pytest.raises(EmptyTrainError):
            cv.folds(np.zeros(n))
        return
    folds = cv.folds(np.zeros(n))
    assert cv.get_n_splits(np.zeros(n)) == len(list(cv.split(np.zeros(n)))) == len(folds) == k
    for fold, group, (train, purged, embargoed) in zip(folds, groups, expected, strict=True):
        assert fold.test.tolist() == group
        assert fold.train.tolist() == train
        assert fold.purged.tolist() == purged
        assert fold.embargoed.tolist() == embargoed
        # the invariant itself: no training label overlaps a test bar or a test label, and
        # nothing trains within `embargo` bars after the last bar a test label reaches
        test = set(group)
        reach = max(min(i + h, n - 1) for i in group)
        assert not any(i + h >= group[0] and i <= reach for i in fold.train)
        assert not any(reach < i <= reach + embargo_bars(n, embargo) for i in fold.train)
        assert test.isdisjoint(fold.train.tolist())


# --- CombinatorialPurgedKFold ----------------------------------------------------------------


@pytest.mark.parametrize(("n_groups", "k"), [(6, 2), (10, 2), (10, 8)])
def test_split_and_path_counts_match_the_formula(n_groups, k):
    cv = CombinatorialPurgedKFold(n_groups, k)
    n_splits = math.comb(n_groups, k)
    assert cv.n_splits == cv.get_n_splits() == n_splits
    assert cv.n_paths == k * n_splits // n_groups == math.comb(n_groups - 1, k - 1)
    X = np.zeros(103)
    assert cv.get_n_splits(X) == len(list(cv.split(X))) == n_splits
    assert cv.path_map.shape == (cv.n_paths, n_groups)


@pytest.mark.parametrize(("n_groups", "k"), [(6, 2), (10, 2), (10, 8)])
def test_every_observation_once_in_every_path(n_groups, k):
    n = 103
    cv = CombinatorialPurgedKFold(n_groups, k, purge=1, embargo=1)
    splits = list(cv.split(np.zeros(n)))
    groups = kfold_groups(n, n_groups)
    test_groups = list(itertools.combinations(range(n_groups), k))
    for p in range(cv.n_paths):
        seen = []
        for g in range(n_groups):
            s = int(cv.path_map[p, g])
            assert g in test_groups[s]
            tests = splits[s][1]
            # the piece is group g, read from the test arrays of split s
            piece = tests[test_groups[s].index(g)].tolist()
            assert piece == groups[g]
            seen.extend(piece)
        assert sorted(seen) == list(range(n))
        assert len(seen) == n
    # each split feeds each of its test groups into exactly one path
    uses = {(int(cv.path_map[p, g]), g) for p in range(cv.n_paths) for g in range(n_groups)}
    assert len(uses) == cv.n_paths * n_groups
    assert uses == {(s, g) for s, groups_s in enumerate(test_groups) for g in groups_s}


def test_stitch_rebuilds_every_path_from_split_results():
    n = 40
    cv = CombinatorialPurgedKFold(5, 2)
    X = np.zeros(n)
    results = [np.concatenate(tests) * 10.0 + s for s, (_, tests) in enumerate(cv.split(X))]
    paths = cv.stitch(results, X)
    assert paths.shape == (cv.n_paths, n)
    assert np.array_equal(np.floor(paths / 10.0), np.tile(np.arange(n), (cv.n_paths, 1)))
    pieces = cv.path_pieces(X)
    for row in pieces.itertuples():
        assert (paths[row.path, row.start:row.stop] % 10 == row.split).all()


def test_path_pieces_have_dates_when_the_data_has_them():
    dates = pd.bdate_range("2024-01-01", periods=30)
    X = pd.Series(np.arange(30.0), index=dates)
    pieces = CombinatorialPurgedKFold(3, 1).path_pieces(X)
    assert list(pieces.columns) == ["path", "group", "split", "start", "stop", "first_date",
                                    "last_date"]
    assert pieces["first_date"].tolist() == [dates[0], dates[10], dates[20]]


@st.composite
def cpcv_settings(draw):
    n_groups = draw(st.integers(2, 7))
    n = draw(st.integers(n_groups, 70))
    return dict(n=n, n_groups=n_groups, k=draw(st.integers(1, n_groups - 1)),
                purge=draw(st.integers(0, 4)), embargo=draw(st.integers(0, 4)))


@settings(max_examples=100, deadline=None)
@given(cpcv_settings())
def test_cpcv_matches_brute_force(params):
    n, h, embargo = params["n"], params["purge"], params["embargo"]
    cv = CombinatorialPurgedKFold(params["n_groups"], params["k"], purge=h, embargo=embargo)
    groups = kfold_groups(n, params["n_groups"])
    combos = list(itertools.combinations(range(params["n_groups"]), params["k"]))
    expected = []
    for combo in combos:
        test = [i for g in combo for i in groups[g]]
        expected.append((test, purge_embargo(n, range(n), test, horizon_ends(n, h), embargo)))
    if any(not train for _, (train, _, _) in expected):
        with pytest.raises(EmptyTrainError):
            cv.folds(np.zeros(n))
        return
    folds = cv.folds(np.zeros(n))
    assert len(folds) == cv.get_n_splits(np.zeros(n)) == len(combos)
    for fold, combo, (test, (train, purged, embargoed)) in zip(folds, combos, expected,
                                                               strict=True):
        assert fold.test_groups == combo
        assert fold.test.tolist() == test
        assert (fold.train.tolist(), fold.purged.tolist(), fold.embargoed.tolist()) == (
            train, purged, embargoed)


def test_too_few_bars_for_the_groups():
    with pytest.raises(NoFoldsError, match=r"only 4 bars.*at most 4 groups"):
        list(CombinatorialPurgedKFold(6, 2).split(np.zeros(4)))
