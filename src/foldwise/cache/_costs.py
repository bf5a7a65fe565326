"""Which runs keep which arrays: those that cost more to run again than to store and read.

Every run the cache executes keeps its **metrics** (an index row of a few hundred bytes):
lookups, the optimizer's hot path and the study's records need nothing else. Its
**arrays** (returns, costs, turnover, positions: tens of kilobytes to megabytes) are asked
for far more rarely — a report, the overfitting statistics, a window that is not a stored
slice — and for a fast strategy running it again costs less than writing them and reading
them back. A sub-millisecond SMA crossover measured here: 0.3 ms to run, 2.7 ms to write
one artifact, 1 ms to read it; 550 MB of artifacts for a 20,000-trial study.

:class:`ArrayPolicy` decides per run, from what this process measured, between the whole
arrays (``"full"``), the returns form without positions (``"returns"``, see
:mod:`foldwise.cache._returns`) and none (``"none"``):

* ``"auto"`` (the default): weigh what running the strategy again costs (its median run
  time, per strategy, over its runs in this process) against storing each part and reading
  it back as often as it is expected to be read (its bytes at the median write and read
  speeds of this process's artifacts), with a margin of :data:`KEEP_MARGIN`:

  - the **returns form** is kept when running again costs more than storing it and reading
    it once: the statistics across runs (PBO, data snooping) read every distinct set's
    returns;
  - the **positions** too, when the run was executed because its whole result was asked
    for (:meth:`BacktestCache.get_or_run`) and the same holds for them (read once more).
    A run executed for its metrics (the optimizer's trials) is expected to have its
    positions read :data:`POSITION_READS` times: a study reads them for the sets it chose
    only, for the stitched out-of-sample curve. Measured on a 40-asset, 15 ms strategy
    (600 trials, one process, medians of 4 alternated runs): every array kept, 10.9 s and
    562 MB; the returns form only, 10.2 s and 55 MB; nothing, 9.8 s and 8 MB (and every
    set run again for the report's statistics).

  The first three runs keep their arrays, to measure the store (the very first write, which
  pays for imports and new directories, is not counted).

  Why a margin: a strategy whose run costs about what its store costs would otherwise
  switch with the machine's load. Measured: a 40-asset crossover ran in 4.1 ms against a
  4.5 ms store alone, and kept 3 of 1,202 runs; with two workers sharing the cores (the
  runs slowed by their contention for memory) the same study kept 124, 109 MB of
  artifacts that took their writes from the trials. Disk is the other cost the estimate
  leaves out.
* ``"always"``: keep every run's arrays (the behaviour before this policy).
* ``"returns"``: keep every run's returns form, never its positions.
* ``"never"``: keep none; every array is re-computed on demand.

A run without arrays (or without positions) is an ordinary entry: its metrics are hits, the
metrics of its windows and its returns come from its returns form where it has one, and
asking for its whole result (:attr:`CacheRecord.result`, :meth:`BacktestCache.get_or_run`)
runs it again, keeps the result in memory and counts it in :attr:`CacheStats.recomputed`. Keys are content
addresses of the strategy's code, the parameters, the data and the settings, so the run
again is the run stored. A run stored with :meth:`BacktestCache.put` always keeps its
arrays: the caller asked to store them.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from typing import Literal

from foldwise.errors import CacheArgumentError

__all__ = ["AHEAD_AFTER", "AHEAD_PRIOR_RUNS", "AHEAD_RATE", "KEEP_ARRAYS", "KEEP_MARGIN",
           "POSITION_READS", "ArrayPolicy", "KeepArrays", "Kept"]

KeepArrays = Literal["auto", "always", "returns", "never"]
KEEP_ARRAYS: tuple[str, ...] = ("auto", "always", "returns", "never")
#: What a run keeps: its whole arrays, its returns form (no positions), or nothing.
Kept = Literal["full", "returns", "none"]

_SAMPLES = 31  # measurements kept per quantity (medians of the recent ones)
#: Running again must cost this many times the store before arrays are kept.
KEEP_MARGIN = 1.25
#: Reads expected of the positions of a run executed for its metrics: a walk-forward study
#: reads those of the sets it chose (one per fold, a few with ``"top_k_mean"``) out of the
#: hundreds to thousands it ran; one in fifty errs on the side of keeping them.
POSITION_READS = 0.02
#: :meth:`ArrayPolicy.store_ahead`: stored runs produced again per new run executed, and
#: the executions observed before deciding.
AHEAD_RATE = 0.25
AHEAD_AFTER = 20
#: New runs of a strategy that store ahead on the prior (:data:`AHEAD_RATE` returns per
#: execution) before this process has evidence of its own: at most this many, which bounds
#: the rows a strategy whose sets never come back can cost.
AHEAD_PRIOR_RUNS = 100

_FIXED: dict[str, Kept] = {"always": "full", "returns": "returns", "never": "none"}
#: Writes measured before the rule applies: the first write of a process pays for imports
#: and a new directory, and alone would make storing look dear.
_FIRST_WRITES = 3


class _Recent:
    """The last ``_SAMPLES`` measurements of one quantity, and their median."""

    def __init__(self) -> None:
        self._values: deque[float] = deque(maxlen=_SAMPLES)

    def add(self, value: float) -> None:
        self._values.append(value)

    def median(self) -> float | None:
        return statistics.median(self._values) if self._values else None


class ArrayPolicy:
    """Decides whether a run the cache executed keeps its arrays (see the module docstring).

    Parameters
    ----------
    mode
        ``"auto"``, ``"always"``, ``"returns"`` or ``"never"``.

    Thread-safe; one per cache object, measurements of this process only.
    """

    def __init__(self, mode: str = "auto") -> None:
        if mode not in KEEP_ARRAYS:
            raise CacheArgumentError(
                f"keep_arrays must be one of {', '.join(map(repr, KEEP_ARRAYS))}, got "
                f"{mode!r}: 'auto' keeps a run's arrays when running it again costs more than "
                "storing and reading them.")
        self.mode = mode
        self._lock = threading.Lock()
        self._run_seconds: dict[str, _Recent] = {}
        self._write = _Recent()  # seconds per byte
        self._read = _Recent()
        self._writes = 0
        self._executed: dict[str, int] = {}  # runs of a strategy executed here
        self._again: dict[str, int] = {}  # ... and stored runs of it produced again
        self._ahead: set[str] = set()
        self._ahead_on_prior: dict[str, int] = {}  # new runs that stored ahead on the prior
        self._row = _Recent()  # seconds per index row

    def keep(self, strategy: str, run_seconds: float, returns_bytes: int,
             positions_bytes: int, whole_asked: bool = True) -> Kept:
        """What a run of ``strategy`` that took ``run_seconds`` keeps, its arrays being
        ``returns_bytes`` of returns form and ``positions_bytes`` of positions;
        ``whole_asked``: it ran because its whole result was asked for (else for its
        metrics). Records the run time."""
        with self._lock:
            runs = self._run_seconds.setdefault(strategy, _Recent())
            runs.add(run_seconds)
            self._executed[strategy] = self._executed.get(strategy, 0) + 1
            if self.mode != "auto":
                return _FIXED[self.mode]
            write = self._write.median()
            if write is None or self._writes < _FIRST_WRITES:
                return "full"  # store, and measure the store
            read = self._read.median()
            if read is None:
                read = write
            run = runs.median() or 0.0
            if run <= KEEP_MARGIN * returns_bytes * (write + read):
                return "none"
            reads = 1.0 if whole_asked else POSITION_READS
            positions = reads * run > KEEP_MARGIN * positions_bytes * (write + reads * read)
            return "full" if positions else "returns"

    def produced_again(self, strategy: str) -> None:
        """Record that a stored run of ``strategy`` had to be produced again (run again, or
        read back) for windows it lacked."""
        with self._lock:
            self._again[strategy] = self._again.get(strategy, 0) + 1

    def store_ahead(self, strategy: str, n_rows: int, again: bool = False) -> bool:
        """Whether a run of ``strategy`` stores the metrics of the ``n_rows`` windows its
        caller will ask for later (a study's other folds) with it, not only the windows
        asked for now; ``again``: a stored run produced again for a window it lacked.

        A walk-forward study comes back to its sets in later folds; each return produces
        the set's run again (runs it, or reads its arrays) for that fold's windows.

        * A run produced **again** stores them when one more return would cost more than
          the rows (its median run time against ``n_rows`` times the median row time): the
          set came back once and is likely to again.
        * A **new** run, while this process lacks evidence (fewer than :data:`AHEAD_AFTER`
          executions that did not store ahead), stores them on the prior that its sets
          come back :data:`AHEAD_RATE` times per execution, when that rate times its median
          run time exceeds what the rows cost — for at most :data:`AHEAD_PRIOR_RUNS` runs.
          The first fold of a study is where this pays: no set has come back yet, and
          every set it runs may return in each later fold.
        * With evidence, a new run stores them once its stored runs were produced again at
          least :data:`AHEAD_RATE` times per execution (those that did not store ahead)
          and that rate times its median run time exceeds what the rows cost; then for the
          rest of the process.

        A row's cost is the median time per row of this process's index transactions,
        which holds each transaction's commit and so overstates a row added to one: the
        rule errs on the side of fewer rows (each also costs about 770 bytes of index).
        Measured: the 9 ms mean reversion (5 folds, 1.1 returns per execution) stores
        ahead; the 0.4 ms SMA crossover of a 20-fold study (38 more windows a set) does
        not."""
        with self._lock:
            if strategy in self._ahead:
                return True
            row = self._row.median()
            runs = self._run_seconds.get(strategy)
            run = (runs.median() if runs is not None else None) or 0.0
            if row is None:
                return False
            if again:
                return run > n_rows * row
            on_prior = self._ahead_on_prior.get(strategy, 0)
            observed = self._executed.get(strategy, 0) - on_prior  # runs that can come back
            if observed < AHEAD_AFTER:
                if on_prior < AHEAD_PRIOR_RUNS and AHEAD_RATE * run > n_rows * row:
                    self._ahead_on_prior[strategy] = on_prior + 1
                    return True
                return False
            rate = self._again.get(strategy, 0) / observed
            if rate >= AHEAD_RATE and rate * run > n_rows * row:
                self._ahead.add(strategy)
                return True
            return False

    def inserted(self, seconds: float, n_rows: int) -> None:
        """Record an index transaction of ``n_rows`` rows that took ``seconds``."""
        if n_rows > 0:
            with self._lock:
                self._row.add(seconds / n_rows)

    def wrote(self, seconds: float, n_bytes: int) -> None:
        """Record an artifact write of ``n_bytes`` that took ``seconds``."""
        if n_bytes > 0:
            with self._lock:
                self._writes += 1
                if self._writes > 1:  # the first write pays for imports and directories
                    self._write.add(seconds / n_bytes)

    def read(self, seconds: float, n_bytes: int) -> None:
        """Record an artifact read of ``n_bytes`` that took ``seconds``."""
        if n_bytes > 0:
            with self._lock:
                self._read.add(seconds / n_bytes)
