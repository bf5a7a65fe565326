"""Drawing folds with matplotlib (imported here only, when a plot is asked for)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._purge import positions_to_ranges

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ._fold import FoldSet

__all__ = ["COLORS", "plot_folds"]

#: Colour of each kind of bar.
COLORS = {"train": "#4C72B0", "test": "#DD8452", "purged": "#C44E52", "embargoed": "#8C8C8C"}


def plot_folds(fold_set: FoldSet, ax: Axes | None = None) -> Axes:
    """One row per fold: training, test, purged and embargoed bars over time.

    The x axis is dates when the data has them, bar positions otherwise. Returns ``ax``,
    or the axes of a new figure when ``ax`` is None.
    """
    import matplotlib.dates as mdates
    from matplotlib.patches import Patch

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(10, 0.35 * len(fold_set) + 1.5))
    dates = fold_set.dates
    if dates is not None and len(dates):
        numbers = mdates.date2num(dates.tz_localize(None) if dates.tz is not None else dates)
        step = float(np.median(np.diff(numbers))) if len(numbers) > 1 else 1.0
        edges = np.append(numbers, numbers[-1] + step)
    else:
        edges = np.arange(fold_set.n_dates + 1, dtype=float)
    for row, fold in enumerate(fold_set):
        for kind, color in COLORS.items():
            spans = [(edges[a], edges[b] - edges[a]) for a, b in positions_to_ranges(getattr(fold, kind))]
            if spans:
                ax.broken_barh(spans, (row - 0.4, 0.8), facecolors=color, linewidth=0)
    ax.set_yticks(range(len(fold_set)), [str(f.number) for f in fold_set])
    ax.set_ylim(len(fold_set) - 0.5, -0.5)
    ax.set_ylabel("fold")
    if dates is not None and len(dates):
        ax.xaxis_date()
        ax.set_xlabel("date")
    else:
        ax.set_xlabel("bar")
    ax.set_title(fold_set.splitter, fontsize="small")
    ax.legend(handles=[Patch(color=c, label=k) for k, c in COLORS.items()],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    return ax
