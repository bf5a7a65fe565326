"""``WalkForward``: rolling or anchored training windows, each followed by its test window.

The windows, for fold ``j`` (positions; with calendar spans, dates mapped to the first bar
at or after them):

1. The first test window starts where the first training window ends: ``min_train`` (or
   ``train``) bars — or the date ``first date + train`` — after the first bar.
2. Test window ``j`` starts ``j * step`` after the first one (``step`` defaults to
   ``test``) and lasts ``test``. Calendar steps are multiplied, never accumulated, so
   month arithmetic does not drift.
3. The training window ends where its test window starts. Rolling: it starts ``train``
   before (never before the first bar, so with ``min_train`` the first windows grow until
   they reach ``train``). Anchored: it starts at the first bar and grows.
4. A test window that runs past the data ends the folds, unless ``partial_test=True``
   keeps it shortened (only the first such window, when test windows overlap). A
   calendar test window that holds no bar (a gap in the dates) is
   skipped and logged.
5. Purge and embargo remove bars from each training window (see the module
   :mod:`foldwise.splits._purge`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from foldwise.errors import NoFoldsError, SplitError

from ._base import BaseSplitter, Planned
from ._sizes import Size, Span, check_span_fits, parse_size
from ._timeline import Timeline

__all__ = ["WalkForward"]

logger = logging.getLogger(__name__)


class WalkForward(BaseSplitter):
    """Walk-forward folds: train on a window, test on the window right after it, move on.

    Parameters
    ----------
    train : int, str, DateOffset or Timedelta
        Length of a training window: a number of bars, or a calendar span such as ``"3Y"``,
        ``"6M"``, ``"2W"``, ``"10D"`` (resolved against the data's dates). It includes the
        bars the purge removes. With ``anchored=True``, the length of the first window.
    test : int, str, DateOffset or Timedelta
        Length of a test window (bars or a calendar span).
    step : int, str, DateOffset or Timedelta, optional
        How far each fold moves on; default ``test`` (test windows tile the history).
        A step smaller than ``test`` makes test windows overlap from fold to fold.
    anchored : bool, default False
        False: rolling windows of fixed length ``train``. True: every training window
        starts at the first bar and grows by ``step``.
    {purge_embargo}
    min_train : int, str, DateOffset or Timedelta, optional
        Start testing once this much history exists: the first training windows grow from
        ``min_train`` until they reach ``train``, then roll (rolling mode only; scikit-
        learn's ``TimeSeriesSplit`` with ``max_train_size`` behaves this way). Default:
        every window has its full length.
    partial_test : bool, default False
        Keep a last test window that the data cuts short (it is dropped by default, so
        every test window has the same length). A calendar test window counts as complete
        when the data reaches the date it ends on.

    Examples
    --------
    >>> import numpy as np
    >>> wf = WalkForward(train=6, test=2, purge=1)
    >>> for train, test in wf.split(np.zeros(12)):
    ...     print(train, test)
    [0 1 2 3 4] [6 7]
    [2 3 4 5 6] [8 9]
    [4 5 6 7 8] [10 11]
    >>> wf.get_n_splits(np.zeros(12))
    3

    On dates, with calendar spans:

    >>> import foldwise
    >>> data = foldwise.datasets.load_goog()
    >>> folds = WalkForward("3Y", "1Y", anchored=True, purge=5).folds(data)
    >>> folds.describe()[["test_start", "test_end", "n_train", "n_test", "purged"]]
      test_start   test_end  n_train  n_test  purged
    0 2007-08-20 2008-08-18      750     252       5
    1 2008-08-19 2009-08-18     1002     252       5
    2 2009-08-19 2010-08-18     1254     252       5
    3 2010-08-19 2011-08-18     1506     253       5
    4 2011-08-19 2012-08-17     1759     252       5

    The last, incomplete year (2012-08-20 to 2013-03-01) is dropped; ``partial_test=True``
    would keep it.
    """

    def __init__(self, train: Size, test: Size, *, step: Size | None = None,
                 anchored: bool = False, purge: Any = 0, embargo: Any = 0,
                 min_train: Size | None = None, partial_test: bool = False) -> None:
        self.train = train
        self.test = test
        self.step = step
        self.anchored = anchored
        self.min_train = min_train
        self.partial_test = partial_test
        self._train = parse_size(train, "train")
        self._test = parse_size(test, "test")
        self._step = self._test if step is None else parse_size(step, "step")
        self._min_train = None if min_train is None else parse_size(min_train, "min_train")
        for name, flag in (("anchored", anchored), ("partial_test", partial_test)):
            if not isinstance(flag, (bool, np.bool_)):
                raise SplitError(f"{name}={flag!r} must be True or False.")
        if self._min_train is not None:
            if anchored:
                raise SplitError(
                    f"min_train={min_train!r} applies to rolling windows only; with "
                    "anchored=True the first training window is `train` and grows from there. "
                    f"Pass train={min_train!r} instead, or anchored=False.")
            if _longer(self._min_train, self._train):
                raise SplitError(
                    f"min_train={min_train!r} is longer than train={train!r}; the first "
                    "windows grow from min_train up to train, so min_train <= train. Lower "
                    "min_train or raise train.")
        self._set_purge_embargo(purge, embargo)
        self._freeze()

    # --- windows ------------------------------------------------------------------------

    def _windows(self, timeline: Timeline) -> list[tuple[int, int, int]]:
        """``(train_start, test_start, test_stop)`` of every fold, before purge/embargo."""
        # Every size given as a Span is checked here, which makes sure the dates exist: the
        # asserts `dates is not None` below, in branches for a Span, restate that.
        n, dates = timeline.n, timeline.dates
        for name in ("train", "test", "step", "min_train"):
            value = getattr(self, "_" + name)
            if isinstance(value, Span):
                check_span_fits(timeline, name, value)
        first_size = self._min_train if self._min_train is not None else self._train
        anchor: pd.Timestamp | None = None
        if isinstance(first_size, Span):
            assert dates is not None
            first = 0
            if n:
                anchor = first_size.shift(dates[0])
                first = int(dates.searchsorted(anchor, side="left"))
        else:
            first = first_size
        if anchor is None and isinstance(self._step, Span) and first < n:
            assert dates is not None
            anchor = dates[first]
        windows: list[tuple[int, int, int]] = []
        empty = []
        j = 0
        while first < n:
            start_date: pd.Timestamp | None
            if isinstance(self._step, Span):
                assert dates is not None
                assert anchor is not None  # set above for a span step
                start_date = self._step.shift(anchor, j)
                start = int(dates.searchsorted(start_date, side="left"))
            else:
                start = first + j * self._step
                start_date = dates[start] if dates is not None and start < n else None
            if start >= n:
                break
            if isinstance(self._test, Span):
                assert dates is not None
                assert start_date is not None  # the date of bar start < n
                end_date = self._test.shift(start_date)
                stop = int(dates.searchsorted(end_date, side="left"))
                complete = dates[-1] >= end_date
            else:
                stop = start + self._test
                complete = stop <= n
                stop = min(stop, n)
            if not complete and not self.partial_test:
                break
            j += 1
            if stop <= start:
                empty.append(start_date)
                continue
            if self.anchored:
                begin = 0
            elif isinstance(self._train, Span):
                assert dates is not None
                assert start_date is not None
                begin = int(dates.searchsorted(self._train.shift(start_date, -1), side="left"))
            else:
                begin = max(0, start - self._train)
            windows.append((begin, start, stop))
            if not complete:
                break  # only the first shortened window; later ones would be shorter still
        if empty:
            logger.warning(
                "%r: %d test window(s) hold no bar and were skipped (gaps in the dates), the "
                "first starting %s.", self, len(empty), empty[0])
        if not windows:
            raise NoFoldsError(self._no_fold_message(timeline, first))
        return windows

    def _no_fold_message(self, timeline: Timeline, first: int) -> str:
        size = self._min_train if self._min_train is not None else self._train
        which = "min_train" if self._min_train is not None else "train"
        if isinstance(size, Span):
            need = (f"{which}={size.text!r} from {timeline.label(0)} reaches bar {first}"
                    if timeline.n else f"{which}={size.text!r}")
        else:
            need = f"{which}={size} bars"
        test = self._test.text if isinstance(self._test, Span) else f"{self._test} bars"
        hint = "" if self.partial_test else (
            ", or pass partial_test=True to keep a last test window the data cuts short")
        return (f"{self!r} makes no fold on {timeline.describe()}: the first training window "
                f"({need}) plus one test window ({test}) is longer than the history. Use "
                f"more data, or shorten {which} or test{hint}.")

    def _plan(self, timeline: Timeline) -> list[Planned]:
        windows = self._windows(timeline)
        leakage = self._leakage_arrays(timeline)
        plans = []
        for number, (begin, start, stop) in enumerate(windows):
            window = np.zeros(timeline.n, dtype=bool)
            window[begin:start] = True
            text = (f"{timeline.label(begin)}..{timeline.label(start - 1)}" if start > begin
                    else f"before {timeline.label(start)}")
            plans.append(self._planned(number, timeline, window,
                                       np.arange(start, stop, dtype=np.int64), leakage, text))
        return plans


def _longer(a: int | Span, b: int | Span) -> bool:
    """Whether size ``a`` is surely longer than ``b`` (only decidable in the same unit)."""
    if isinstance(a, int) and isinstance(b, int):
        return a > b
    if isinstance(a, Span) and isinstance(b, Span):
        reference = pd.Timestamp("2001-01-15")
        return a.length_at(reference) > b.length_at(reference)
    return False
