"""What the cache hands out: records of stored runs, statistics, verification reports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from foldwise._canonical import from_canonical
from foldwise.cache._artifacts import holds_positions
from foldwise.cache._index import IndexRow
from foldwise.cache._keys import Window
from foldwise.errors import CacheArgumentError

if TYPE_CHECKING:
    from foldwise.backtest import BacktestResult
    from foldwise.cache._returns import RunReturns

__all__ = ["CacheRecord", "CacheStats", "RunSource", "VerifyReport", "format_size",
           "metrics_json"]


class RunSource(Protocol):
    """Where a record's arrays come from (the cache's results memory)."""

    def load(self, record: CacheRecord) -> BacktestResult: ...

    def load_returns(self, record: CacheRecord) -> RunReturns: ...


class CacheRecord:
    """One stored run, as :meth:`BacktestCache.get` returns it. Immutable.

    Only the metrics are decoded when the record is read (the hot path needs nothing
    else); parameters, settings and window are decoded from the index row when asked.

    Attributes
    ----------
    key : str
        The digest of the entry's key.
    kind : str
        ``"full"`` (metrics and artifacts) or ``"slice"`` (metrics of a window of a full
        run).
    strategy, fingerprint : str
        The strategy's name and code fingerprint.
    params : Mapping
        The parameters, defaults filled in (tuples and non-finite floats restored; dates
        and paths as the strings the key used). Read-only.
    settings : Mapping
        Costs, delay, price field, missing-price policy, periods per year. Read-only.
    data_hash : str
        Content hash of the market data.
    window : Window or None
        The bars of a slice entry.
    parent : str or None
        Key of the full run a slice entry was cut from.
    metrics : Mapping[str, float]
        Every metric, available without reading any artifact. Read-only.
    n_bytes : int
        Size of the artifact file (0 for a slice).
    arrays : str
        What a full run stores besides its metrics: ``"full"`` (every array),
        ``"returns"`` (its returns form, without positions) or ``"none"``; see
        :class:`BacktestCache`'s ``keep_arrays``. ``"none"`` for a slice.
    created : float
        Unix time of the first store.
    """

    __slots__ = ("_row", "_runs", "metrics")
    _row: IndexRow
    _runs: RunSource
    metrics: Mapping[str, float]

    def __init__(self, row: IndexRow, runs: RunSource) -> None:
        object.__setattr__(self, "_row", row)
        object.__setattr__(self, "_runs", runs)  # the results memory of the cache
        object.__setattr__(self, "metrics", MappingProxyType(json.loads(row.metrics)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a CacheRecord is read-only; cannot set {name!r}")

    key = property(lambda self: self._row.key)
    kind = property(lambda self: self._row.kind)
    strategy = property(lambda self: self._row.strategy)
    fingerprint = property(lambda self: self._row.fingerprint)
    data_hash = property(lambda self: self._row.data_hash)
    parent = property(lambda self: self._row.parent)
    n_bytes = property(lambda self: self._row.n_bytes)
    created = property(lambda self: self._row.created)

    @property
    def params(self) -> Mapping[str, Any]:
        return MappingProxyType(from_canonical(json.loads(self._row.params)))

    @property
    def settings(self) -> Mapping[str, Any]:
        return MappingProxyType(json.loads(self._row.settings))

    @property
    def window(self) -> Window | None:
        return None if self._row.window is None else Window(*json.loads(self._row.window))

    @property
    def is_slice(self) -> bool:
        return self._row.kind == "slice"

    @property
    def arrays(self) -> str:
        artifact = self._row.artifact
        return "none" if artifact is None else "full" if holds_positions(artifact) else "returns"

    @property
    def result(self) -> BacktestResult:
        """The stored run (read from its artifact file on first use, then kept in memory).

        A slice entry is rebuilt from its full run, which must still be in the cache.

        Raises
        ------
        CacheCorruptedError
            The artifact file is missing, truncated or not the one recorded.
        CacheMissError
            A slice whose full run is no longer in the cache.
        ArraysNotKeptError
            The run was stored without its arrays or without its positions (:attr:`arrays`),
            and is not in this process's memory: ``cache.get_or_run(...)`` runs it again.
        """
        return self._runs.load(self)

    def run_returns(self) -> RunReturns:
        """The run's returns form: its returns, costs, turnover and trades per date
        (read-only arrays; a slice's window of its full run's), without reading its
        positions. What the metrics of any window and the statistics across runs need.

        Raises
        ------
        CacheCorruptedError, CacheMissError
            As :attr:`result`.
        ArraysNotKeptError
            The run was stored without arrays (:attr:`arrays` is ``"none"``) and is not in
            this process's memory.
        """
        return self._runs.load_returns(self)

    def __repr__(self) -> str:
        window = self.window
        span = "" if window is None else f", window={window.first}..{window.last}"
        sharpe = self.metrics.get("sharpe", float("nan"))
        return (f"CacheRecord({self.kind} {self.strategy}({dict(self.params)}){span}, "
                f"sharpe={sharpe:.3f}, key={self.key})")


@dataclass(frozen=True)
class CacheStats:
    """What :meth:`BacktestCache.stats` reports."""

    directory: str
    runs: int
    full_runs: int
    slice_runs: int
    strategies: dict[str, int]
    artifact_bytes: int
    bytes_on_disk: int
    hits: int
    misses: int
    puts: int
    #: Full runs whose arrays are kept on disk (the others re-compute them on demand).
    with_arrays: int = 0
    #: ... of which with their positions (the others keep their returns form only).
    with_positions: int = 0
    #: Runs without arrays this process ran again because their arrays were asked for.
    recomputed: int = 0
    #: Where the arrays live when not in the cache directory (a shared path, a URL).
    artifact_location: str | None = None

    def __str__(self) -> str:
        lines = [f"cache        {self.directory}",
                 *([f"artifacts    {self.artifact_location}"] if self.artifact_location else []),
                 f"runs         {self.runs} ({self.full_runs} full, of which {self.with_arrays} "
                 f"keep their arrays, {self.with_positions} with positions; {self.slice_runs} "
                 "slices)",
                 f"on disk      {format_size(self.bytes_on_disk)} ({format_size(self.artifact_bytes)} of "
                 "artifacts)",
                 f"this process {self.hits} hits, {self.misses} misses, {self.puts} stored, "
                 f"{self.recomputed} re-computed"]
        lines += [f"  {name:<24} {count} runs" for name, count in sorted(self.strategies.items())]
        return "\n".join(lines)


@dataclass
class VerifyReport:
    """What :meth:`BacktestCache.verify` found. Nothing listed here was ever opened as code.

    Attributes
    ----------
    checked : int
        Index rows examined.
    missing : list[str]
        Keys whose artifact file is gone.
    corrupted : list[tuple[str, str]]
        Keys whose artifact is truncated, damaged, replaced or misnamed, with the reason.
    orphans : list[str]
        Artifact files no row names (a writer killed between rename and insert, or a
        deletion killed between row and file). Harmless; repair removes them.
    temporary : list[str]
        Unfinished writes (``.*.tmp``), invisible to readers. Repair removes them.
    foreign : list[str]
        Files foldwise never writes there (a ``.pkl``, say). Reported, never opened, never
        deleted.
    index_problems : list[str]
        Damage the index store reports about itself (SQLite's ``PRAGMA quick_check``).
        Rows whose JSON cannot be read are listed in ``corrupted``.
    repaired : bool
        Whether damaged rows and stale leftovers were removed.
    index_reset : str or None
        When a repair found the index itself damaged: what became of it (the SQLite file
        is moved aside, never deleted) — an empty index started in its place.
    """

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupted: list[tuple[str, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    index_problems: list[str] = field(default_factory=list)
    repaired: bool = False
    index_reset: str | None = None

    @property
    def ok(self) -> bool:
        """True when every entry and the index are intact and nothing foreign is there."""
        return not (self.missing or self.corrupted or self.foreign or self.index_problems)

    def __str__(self) -> str:
        lines = [f"checked {self.checked} entries: "
                 + ("all intact" if not (self.missing or self.corrupted) else
                    f"{len(self.missing)} missing, {len(self.corrupted)} corrupted")]
        lines += [f"  missing artifact: {key}" for key in self.missing]
        lines += [f"  corrupted: {key}: {reason}" for key, reason in self.corrupted]
        lines += [f"  orphan artifact: {path}" for path in self.orphans]
        lines += [f"  unfinished write: {path}" for path in self.temporary]
        lines += [f"  foreign file (not opened): {path}" for path in self.foreign]
        lines += [f"  index damaged: {problem}" for problem in self.index_problems]
        if self.index_reset is not None:
            lines.append(f"the damaged index was {self.index_reset}; an empty index started "
                         "(runs are re-created when asked for)")
        if self.repaired:
            lines.append("repaired: damaged entries dropped, stale leftovers removed "
                         "(foreign files left in place)")
        return "\n".join(lines)


def format_size(n: int) -> str:
    """``n`` bytes for people: ``"12.3 MB"``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


def metrics_json(metrics: Mapping[str, Any]) -> str:
    out = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or isinstance(value, bool) or not hasattr(value, "__float__"):
            raise CacheArgumentError(
                f"metrics must map names to numbers; got {name!r}: {value!r}.")
        out[name] = float(value)
    return json.dumps(out, allow_nan=True)
