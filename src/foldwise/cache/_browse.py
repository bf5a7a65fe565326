"""Selecting stored runs and laying them out as DataFrames (``runs``, ``compare``, ``best``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from foldwise._canonical import canonical_json
from foldwise.cache._index import IndexBackend, IndexRow
from foldwise.cache._keys import resolve_strategy
from foldwise.cache._records import CacheRecord
from foldwise.data import MarketData
from foldwise.errors import CacheArgumentError
from foldwise.metrics import METRICS

__all__ = ["KINDS", "runs_frame", "select_rows"]

#: Values of ``kind=`` and the row kind they select (None: every kind).
KINDS: dict[str | None, str | None] = {"full": "full", "slice": "slice", "all": None, None: None}
_WINDOW_COLUMNS = ("window_start", "window_stop", "window_first", "window_last")
_TRAILING_COLUMNS = ("data_hash", "fingerprint", "created", "last_used", "bytes")


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
                   bytes=record.n_bytes)
        table.append(row)
    frame = pd.DataFrame(table, columns=columns,
                         index=pd.Index([r.key for r in records], name="key"))
    for column in ("created", "last_used"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame.astype({n: float for n in metric_names})
