"""The splitter contract, run on every splitter: a new splitter proves itself by passing it.

Add a factory to SPLITTERS; each one must work on the bundled GOOG data (2148 bars).
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pandas as pd
import pytest

import foldwise
from foldwise._canonical import canonical_json
from foldwise.errors import CalendarSpanError, FoldSetMismatchError
from foldwise.splits import (
    BaseCombinatorialSplitter,
    BaseSplitter,
    CombinatorialPurgedKFold,
    Fold,
    FoldSet,
    FoldStore,
    LabelEnds,
    PurgedKFold,
    WalkForward,
)

SPLITTERS = {
    "walk_forward": lambda: WalkForward(500, 250, purge=5),
    "walk_forward_calendar": lambda: WalkForward("2Y", "6M", anchored=True, purge="1W"),
    "purged_kfold": lambda: PurgedKFold(5, purge=5, embargo=0.01),
    "cpcv": lambda: CombinatorialPurgedKFold(6, 2, purge=5, embargo=3),
}

# Another setting for each, to check that ids follow the settings.
CHANGED = {
    "walk_forward": lambda: WalkForward(500, 250, purge=6),
    "walk_forward_calendar": lambda: WalkForward("2Y", "6M", anchored=True, purge="2W"),
    "purged_kfold": lambda: PurgedKFold(5, purge=5, embargo=0.02),
    "cpcv": lambda: CombinatorialPurgedKFold(6, 2, purge=5, embargo=4),
}


@pytest.fixture(params=sorted(SPLITTERS))
def kind(request):
    return request.param


@pytest.fixture
def splitter(kind):
    return SPLITTERS[kind]()


@pytest.fixture(scope="module")
def data():
    return foldwise.datasets.load_goog()


def pairs(splitter, X):
    """``split`` output as (train, test) lists, test groups joined for CPCV."""
    out = []
    for train, test in splitter.split(X):
        if isinstance(splitter, BaseCombinatorialSplitter):
            assert isinstance(test, list)
            assert all(isinstance(t, np.ndarray) for t in test)
            test = np.concatenate(test)
        out.append((train, test))
    return out


def test_split_yields_sorted_disjoint_int_arrays(splitter, data):
    for train, test in pairs(splitter, data):
        for array in (train, test):
            assert isinstance(array, np.ndarray)
            assert array.dtype.kind == "i"
            assert array.size
            assert np.all(np.diff(array) > 0)
            assert array.min() >= 0
            assert array.max() < data.n_dates
        assert np.intersect1d(train, test).size == 0


def test_get_n_splits_counts_what_split_yields(splitter, data):
    assert splitter.get_n_splits(data) == len(pairs(splitter, data))


def test_same_folds_for_marketdata_frame_series_and_array(splitter, data):
    frame = data.frame("close")
    reference = [(a.tolist(), b.tolist()) for a, b in pairs(splitter, data)]
    for X in (frame, frame["GOOG"]):
        assert [(a.tolist(), b.tolist()) for a, b in pairs(splitter, X)] == reference
    if not any(isinstance(v, str) for v in splitter.get_params().values()):  # spans need dates
        for X in (frame.to_numpy(), frame.to_numpy().tolist()):
            assert [(a.tolist(), b.tolist()) for a, b in pairs(splitter, X)] == reference


def test_folds_match_split_and_carry_their_dates(splitter, data):
    folds = splitter.folds(data)
    assert isinstance(folds, FoldSet)
    assert len(folds) == splitter.get_n_splits(data)
    for number, (fold, (train, test)) in enumerate(zip(folds, pairs(splitter, data),
                                                       strict=True)):
        assert isinstance(fold, Fold)
        assert fold.number == number
        assert np.array_equal(fold.train, train)
        assert np.array_equal(fold.test, test)
        assert (fold.train_start, fold.train_end) == (data.index[train[0]], data.index[train[-1]])
        assert (fold.test_start, fold.test_end) == (data.index[test[0]], data.index[test[-1]])
        # kept, purged, embargoed and test bars never overlap
        parts = [fold.train, fold.test, fold.purged, fold.embargoed]
        joined = np.concatenate(parts)
        assert np.unique(joined).size == joined.size
        for array in parts:
            assert not array.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                array[:1] = 0


def test_fold_ids_are_stable_unique_and_follow_data_and_settings(kind, splitter, data):
    folds = splitter.folds(data)
    ids = folds.fold_ids
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert SPLITTERS[kind]().folds(data).fold_ids == ids
    assert SPLITTERS[kind]().folds(data).id == folds.id
    other_settings = CHANGED[kind]().folds(data)
    assert set(other_settings.fold_ids).isdisjoint(ids)
    assert other_settings.id != folds.id
    close = data.frame("close").copy()
    close.iloc[-1, 0] *= 1.0001  # one value, at the very end
    other_data = splitter.folds(foldwise.MarketData.from_frame(close))
    assert set(other_data.fold_ids).isdisjoint(ids)
    assert other_data.id != folds.id


def test_repr_comes_from_the_signature_and_round_trips(splitter):
    text = repr(splitter)
    names = [p for p in inspect.signature(type(splitter).__init__).parameters if p != "self"]
    assert re.findall(r"(\w+)=", text) == names
    assert list(splitter.get_params()) == names
    namespace = {"WalkForward": WalkForward, "PurgedKFold": PurgedKFold,
                 "CombinatorialPurgedKFold": CombinatorialPurgedKFold}
    rebuilt = eval(text, namespace)
    assert rebuilt == splitter
    assert hash(rebuilt) == hash(splitter)
    assert canonical_json(splitter.config)  # the configuration is canonical JSON


def test_splitters_are_immutable(splitter):
    with pytest.raises(AttributeError, match="build a new splitter"):
        splitter.purge = 0


def test_describe_has_one_row_per_fold(splitter, data):
    table = splitter.describe(data)
    assert list(table.columns[:9]) == ["fold", "train_start", "train_end", "test_start",
                                       "test_end", "n_train", "n_test", "purged", "embargoed"]
    folds = splitter.folds(data)
    assert table["fold"].tolist() == list(range(len(folds)))
    assert table["n_train"].tolist() == [f.n_train for f in folds]
    assert table["purged"].tolist() == [f.purged.size for f in folds]
    assert (table["train_start"] <= table["train_end"]).all()


def test_store_reuses_and_refuses(kind, splitter, data, tmp_path):
    store = FoldStore(tmp_path)
    first = splitter.folds(data, store=store, name="study")
    again = SPLITTERS[kind]().folds(data, store=store, name="study")
    assert again == first
    assert again.fold_ids == first.fold_ids
    with pytest.raises(FoldSetMismatchError):
        CHANGED[kind]().folds(data, store=store, name="study")
    shorter = data.islice(0, data.n_dates - 1)
    with pytest.raises(FoldSetMismatchError):
        splitter.folds(shorter, store=store, name="study")


def test_calendar_purge_needs_dates(kind):
    cls = type(SPLITTERS[kind]())
    args = {"walk_forward": (50, 10), "walk_forward_calendar": (50, 10), "purged_kfold": (3,),
            "cpcv": (4, 2)}[kind]
    with pytest.raises(CalendarSpanError, match="has no dates"):
        list(cls(*args, purge="3D").split(np.zeros(200)))


def test_explicit_label_ends_equal_a_constant_horizon(kind, data):
    cls = type(SPLITTERS[kind]())
    args = {"walk_forward": (500, 250), "walk_forward_calendar": ("2Y", "6M"),
            "purged_kfold": (5,), "cpcv": (6, 2)}[kind]
    n, h = data.n_dates, 7
    positions = np.minimum(np.arange(n) + h, n - 1)
    as_dates = LabelEnds(data.index[positions])
    reference = [(a.tolist(), b.tolist()) for a, b in pairs(cls(*args, purge=h), data)]
    for ends in (LabelEnds(positions), as_dates):
        got = [(a.tolist(), b.tolist()) for a, b in pairs(cls(*args, purge=ends), data)]
        assert got == reference


def test_the_base_class_says_which_protocol(splitter):
    sklearn_like = not isinstance(splitter, CombinatorialPurgedKFold)
    assert isinstance(splitter, BaseSplitter) is sklearn_like
    assert isinstance(splitter, BaseCombinatorialSplitter) is not sklearn_like


def test_tz_aware_dates(splitter, data):
    frame = data.frame("close").tz_localize("America/New_York")
    reference = [(a.tolist(), b.tolist()) for a, b in pairs(splitter, data)]
    assert [(a.tolist(), b.tolist()) for a, b in pairs(splitter, frame)] == reference
    assert splitter.folds(frame)[0].train_start.tz is not None
    assert isinstance(splitter.describe(pd.DataFrame(frame)), pd.DataFrame)
