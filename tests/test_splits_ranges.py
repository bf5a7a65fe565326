"""positions_to_ranges / ranges_to_positions: the public range helpers of foldwise.splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import foldwise.splits
from foldwise.errors import SplitError
from foldwise.splits import WalkForward, positions_to_ranges, ranges_to_positions

# Sorted, distinct bar positions, with gaps of every size (including none).
sorted_positions = st.sets(st.integers(0, 500), max_size=120).map(
    lambda s: np.array(sorted(s), dtype=np.int64))


def test_they_are_public_names_of_foldwise_splits():
    assert {"positions_to_ranges", "ranges_to_positions"} <= set(foldwise.splits.__all__)


@given(sorted_positions)
def test_round_trip_and_shape_of_the_ranges(positions):
    ranges = positions_to_ranges(positions)

    assert ranges.dtype == np.int64
    assert ranges.shape == (ranges.shape[0], 2)
    np.testing.assert_array_equal(ranges_to_positions(ranges), positions)
    assert ranges_to_positions(ranges).dtype == np.int64
    if len(ranges):
        starts, stops = ranges[:, 0], ranges[:, 1]
        assert (starts < stops).all()  # no empty range
        # sorted, disjoint and never touching: a gap of at least one bar between ranges
        assert (starts[1:] > stops[:-1]).all()
        # each range is exactly one run of the positions
        assert int((stops - starts).sum()) == len(positions)
        assert starts[0] == positions[0] and stops[-1] == positions[-1] + 1


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 30)), max_size=20))
def test_ranges_to_positions_then_back_merges_touching_ranges(gaps_and_lengths):
    # Build sorted, disjoint ranges (possibly touching: gap 0) from gaps and lengths.
    pairs, stop = [], 0
    for gap, length in gaps_and_lengths:
        start = stop + gap
        stop = start + length
        pairs.append((start, stop))
    positions = ranges_to_positions(pairs)

    expected = np.concatenate([np.arange(a, b) for a, b in pairs]) if pairs else np.empty(0)
    np.testing.assert_array_equal(positions, expected)
    merged = positions_to_ranges(positions)
    assert len(merged) == len(pairs) - sum(1 for gap, _ in gaps_and_lengths[1:] if gap == 0)
    np.testing.assert_array_equal(ranges_to_positions(merged), positions)


def test_matches_the_ranges_of_a_fold():
    fold = WalkForward(10, 5, purge=2).folds(np.zeros(40))[1]
    assert positions_to_ranges(fold.train).tolist() == [list(r) for r in fold.train_ranges]


def test_empty_inputs():
    assert positions_to_ranges(np.array([], dtype=np.int64)).shape == (0, 2)
    assert ranges_to_positions(np.empty((0, 2), dtype=np.int64)).shape == (0,)
    assert ranges_to_positions([[3, 3]]).tolist() == []


@pytest.mark.parametrize(("positions", "message"), [
    ([3, 2], "strictly increasing"),
    ([1, 1], "strictly increasing"),
    ([0.5, 1.5], "integer"),
    ([[0, 1]], "1-D"),
])
def test_positions_to_ranges_refuses_what_is_not_sorted_positions(positions, message):
    with pytest.raises(SplitError, match=message):
        positions_to_ranges(np.array(positions))


@pytest.mark.parametrize(("ranges", "message"), [
    ([[5, 2]], "ends before it starts"),
    ([1, 2, 3], r"shape \(k, 2\)"),
    ([[0.0, 2.0]], "integers"),
])
def test_ranges_to_positions_refuses_malformed_ranges(ranges, message):
    with pytest.raises(SplitError, match=message):
        ranges_to_positions(ranges)
