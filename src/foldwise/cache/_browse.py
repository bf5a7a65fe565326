"""Browsing a cache: stored runs selected and laid out as DataFrames.

:class:`StoredRuns` holds the browsing methods of :class:`~foldwise.BacktestCache`
(``runs``, ``compare``, ``best``); the cache inherits them. Rows are selected in the index
by strategy name and kind, then by code fingerprint, data hash and type-exact parameter
values; each becomes one DataFrame row of parameters, metrics and provenance. Browsing
reads the index only, never an artifact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from foldwise._canonical import canonical_json
from foldwise.cache._index import IndexBackend, IndexRow
from foldwise.cache._keys import CacheKey, resolve_strategy
from foldwise.cache._memo import RecordMemo
from foldwise.cache._records import CacheRecord
from foldwise.data import MarketData
from foldwise.errors import CacheArgumentError, CacheMissError
from foldwise.metrics import METRICS

__all__ = ["KINDS", "StoredRuns", "digest_of", "runs_frame", "select_rows"]

#: Values of ``kind=`` and the row kind they select (None: every kind).
KINDS: dict[str | None, str | None] = {"full": "full", "slice": "slice", "all": None, None: None}
_WINDOW_COLUMNS = ("window_start", "window_stop", "window_first", "window_last")
_TRAILING_COLUMNS = ("data_hash", "fingerprint", "created", "last_used", "arrays", "bytes")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def select_rows(index: IndexBackend, strategy: Any, kind: str | None, data: Any,
                params: Mapping[str, Any]) -> list[IndexRow]:
    """Rows of one strategy (a name, or a strategy object: its current code), kind, data
    (a MarketData or its hash) and parameter values (type-exact)."""
    if kind not in KINDS:
        raise CacheArgumentError(f"kind must be 'full', 'slice' or 'all', got {kind!r}.")
    name = fingerprint = None
    if isinstance(strategy, str):
        name = strategy
    elif strategy is not None:
        runner = resolve_strategy(strategy)
        name, fingerprint = runner.name, runner.fingerprint
    rows = index.rows(strategy=name, kind=KINDS[kind])
    if fingerprint is not None:
        rows = [r for r in rows if r.fingerprint == fingerprint]
    if data is not None:
        data_hash = data.content_hash if isinstance(data, MarketData) else str(data)
        rows = [r for r in rows if r.data_hash == data_hash]
    if params and rows:
        wanted = {n: canonical_json(value, f"runs({n}=...)") for n, value in params.items()}
        decoded = [(r, json.loads(r.params)) for r in rows]
        known = set().union(*(p for _, p in decoded))
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise CacheArgumentError(
                f"no stored run has a parameter {', '.join(map(repr, unknown))}; the runs "
                f"selected have {', '.join(sorted(known)) or 'no parameters'}.")
        rows = [r for r, p in decoded
                if all(n in p and _json(p[n]) == text for n, text in wanted.items())]
    return rows


def runs_frame(records: list[CacheRecord], with_windows: bool) -> pd.DataFrame:
    """One row per record, indexed by key (see :meth:`BacktestCache.runs` for the columns)."""
    params = [record.params for record in records]  # decoded once per record
    param_names = sorted({name for p in params for name in p})
    metric_names = list(METRICS) + sorted(
        {m for record in records for m in record.metrics} - set(METRICS))
    columns = ["strategy", "kind", *(_WINDOW_COLUMNS if with_windows else ()),
               *(f"params_{n}" for n in param_names), *metric_names, *_TRAILING_COLUMNS]
    table = []
    for record, values in zip(records, params, strict=True):
        row: dict[str, Any] = {"strategy": record.strategy, "kind": record.kind}
        if with_windows:
            w = record.window
            row.update(zip(_WINDOW_COLUMNS, (None,) * 4 if w is None else
                           (w.start, w.stop, w.first, w.last), strict=True))
        row.update({f"params_{n}": values.get(n) for n in param_names})
        row.update({n: record.metrics.get(n, math.nan) for n in metric_names})
        row.update(data_hash=record.data_hash, fingerprint=record.fingerprint,
                   created=record.created, last_used=record._row.last_used,
                   arrays=record.arrays, bytes=record.n_bytes)
        table.append(row)
    frame = pd.DataFrame(table, columns=columns,
                         index=pd.Index([r.key for r in records], name="key"))
    for column in ("created", "last_used"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame.astype({n: float for n in metric_names})


def digest_of(key: Any) -> str:
    """The digest of a :class:`CacheKey`, a :class:`CacheRecord` or a digest."""
    if isinstance(key, str):
        return key
    if isinstance(key, CacheKey):
        return key.digest
    if isinstance(key, CacheRecord):
        return key.key
    raise CacheArgumentError(
        f"expected a CacheKey, a CacheRecord or a key digest (str), got {type(key).__name__}.")


class StoredRuns:
    """The browsing methods of :class:`~foldwise.BacktestCache` (which inherits them).

    They need the cache's ``index`` and its record memo ``_memo``.
    """

    index: IndexBackend
    _memo: RecordMemo

    def runs(self, strategy: Any = None, *, kind: str | None = "full",
             data: MarketData | str | None = None, **params: Any) -> pd.DataFrame:
        """Stored runs as a DataFrame, one row per run, indexed by key.

        Parameters
        ----------
        strategy
            A name (every version of the code stored under that name), or a strategy object
            or function (only runs of its current code). None: all.
        kind
            ``"full"`` (default), ``"slice"`` or ``"all"``.
        data
            Only runs on this data (a MarketData or its content hash).
        **params
            Only runs whose parameter has exactly this value (type-exact, like keys).

        Returns
        -------
        DataFrame
            Columns ``strategy, kind``, then ``window_start, window_stop, window_first,
            window_last`` when slices are included, ``params_<name>`` per parameter, every
            metric, and ``data_hash, fingerprint, created, last_used, arrays, bytes``
            (``arrays``: what a full run keeps, :attr:`CacheRecord.arrays`).
        """
        self._memo.flush()
        rows = select_rows(self.index, strategy, kind, data, params)
        return runs_frame([self._memo.remember(row) for row in rows], kind != "full")

    def compare(self, keys: Iterable[CacheKey | CacheRecord | str]) -> pd.DataFrame:
        """The given runs side by side, one row per key in the order given.

        Use ``.T`` for one column per run.

        Raises
        ------
        CacheMissError
            Naming the keys that are not stored.
        """
        digests = [digest_of(key) for key in keys]
        records = [self._memo.lookup(d) for d in digests]
        absent = [d for d, r in zip(digests, records, strict=True) if r is None]
        if absent:
            raise CacheMissError(
                f"{len(absent)} of the keys are not in the cache: {', '.join(absent[:5])}"
                f"{'...' if len(absent) > 5 else ''}. List what is stored with cache.runs().")
        present = [r for r in records if r is not None]
        return runs_frame(present, any(r.is_slice for r in present))

    def best(self, strategy: Any, metric: str, top_n: int = 5, maximize: bool = True, *,
             kind: str | None = "full", data: MarketData | str | None = None,
             **params: Any) -> pd.DataFrame:
        """The ``top_n`` stored runs of ``strategy`` ranked by ``metric`` (NaN last).

        Same selection arguments as :meth:`runs`.
        """
        frame = self.runs(strategy, kind=kind, data=data, **params)
        if metric not in frame.columns or metric.startswith("params_") or metric in (
                "strategy", "kind", "data_hash", "fingerprint", "created", "last_used"):
            available = [c for c in frame.columns if c in METRICS] or list(METRICS)
            raise CacheArgumentError(
                f"unknown metric {metric!r}; stored metrics: {', '.join(available)}.")
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise CacheArgumentError(f"top_n must be an integer >= 1, got {top_n!r}.")
        return frame.sort_values(metric, ascending=not maximize, na_position="last",
                                 kind="stable").head(top_n)
