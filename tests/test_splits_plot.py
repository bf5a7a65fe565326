"""Fold plots (matplotlib, Agg backend)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

import foldwise
from foldwise.splits import CombinatorialPurgedKFold, PurgedKFold, WalkForward
from foldwise.splits._plot import COLORS


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def bars_by_colour(ax):
    """Total width drawn in each colour."""
    totals = {}
    for collection in ax.collections:
        colour = matplotlib.colors.to_hex(collection.get_facecolor()[0])
        widths = sum(path.get_extents().width for path in collection.get_paths())
        totals[colour] = totals.get(colour, 0.0) + widths
    return totals


def test_plot_on_positions_draws_every_kind():
    splitter = PurgedKFold(3, purge=2, embargo=1)
    ax = splitter.plot(np.zeros(30))
    totals = bars_by_colour(ax)
    folds = splitter.folds(np.zeros(30))
    for kind, colour in COLORS.items():
        expected = sum(getattr(f, kind).size for f in folds)
        assert totals.get(colour.lower(), 0.0) == pytest.approx(expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2"]
    assert ax.get_xlabel() == "bar"


def test_plot_on_dates_into_given_axes():
    data = foldwise.datasets.load_goog()
    _, ax = plt.subplots()
    returned = WalkForward("2Y", "1Y", purge=10).plot(data, ax=ax)
    assert returned is ax
    assert ax.get_xlabel() == "date"
    low, high = ax.get_xlim()
    assert matplotlib.dates.num2date(low).year <= 2006
    assert matplotlib.dates.num2date(high).year >= 2012
    assert {t.get_text() for t in ax.get_legend().get_texts()} == set(COLORS)


def test_plot_cpcv_and_tz_aware_dates():
    frame = foldwise.datasets.load_goog().frame().tz_localize("UTC")
    ax = CombinatorialPurgedKFold(5, 2, purge=3).plot(frame)
    assert len(ax.get_yticks()) == 10
