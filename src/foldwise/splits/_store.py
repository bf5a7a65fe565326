"""``FoldStore``: fold definitions on disk, reused on resume, refused when the data changed.

One JSON file per fold set, ``<root>/folds/<name>.json``, written atomically (a reader sees
the old file or the whole new one). It records what the folds were made from — the data's
content hash, size and first / last date, the splitter's repr and canonical configuration
— and every fold compactly: its id and its train / test / purged / embargoed positions as
``[start, stop)`` runs. Reading a file parses JSON and nothing else; a damaged file is an
error that names it, never code execution.

Asking for a stored name with the same data and splitter returns the stored folds; with
other data or another splitter it raises :class:`~foldwise.errors.FoldSetMismatchError`,
which says what changed and how to go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import itertools
import json
import logging
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from foldwise._atomic import TEMP_SUFFIX, atomic_write_json, fsync_dir
from foldwise._canonical import canonical
from foldwise._paths import resolve_root
from foldwise.errors import FoldSetMismatchError, FoldStoreError, SplitError

from ._base import make_fold_set
from ._fold import Fold, FoldSet, fold_id, fold_set_id
from ._purge import positions_to_ranges, ranges_to_positions
from ._timeline import Timeline, as_timeline, format_date

if TYPE_CHECKING:
    from ._base import _Splitter

__all__ = ["FoldStore"]

logger = logging.getLogger(__name__)

_FORMAT = "foldwise.folds"
_FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ARRAYS = ("train", "test", "purged", "embargoed")


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None else stamp.isoformat()


class FoldStore:
    """A directory of stored fold sets: ``<root>/folds/<name>.json``.

    Parameters
    ----------
    root
        The foldwise store directory; default ``$FOLDWISE_DIR`` or ``./.foldwise``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from foldwise.splits import WalkForward
    >>> directory = tempfile.TemporaryDirectory()
    >>> store = FoldStore(directory.name)
    >>> folds = WalkForward(50, 10).folds(np.arange(100.0), store=store, name="study-1")
    >>> store.names()
    ['study-1']
    >>> WalkForward(50, 10).folds(np.arange(100.0), store=store, name="study-1") == folds
    True
    >>> directory.cleanup()
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_root(root)
        self.directory = self.root / "folds"

    def __repr__(self) -> str:
        return f"FoldStore({str(self.root)!r})"

    # --- files ---------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        """The file of fold set ``name`` (which need not exist)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise FoldStoreError(
                f"fold set name {name!r} cannot be a file name: use 1-200 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit (e.g. 'goog-sma-2024').")
        return self.directory / f"{name}.json"

    def names(self) -> list[str]:
        """Names of the stored fold sets, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name[: -len(".json")] for p in self.directory.glob("*.json")
                      if not p.name.startswith(".") and not p.name.endswith(TEMP_SUFFIX))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.path(name).is_file()

    def delete(self, name: str) -> bool:
        """Remove fold set ``name``; return whether it existed."""
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def read(self, name: str) -> dict[str, Any] | None:
        """The stored record of ``name`` (parsed JSON, checked), or None if there is none."""
        path = self.path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise self._damaged(name, f"it is not valid JSON ({exc})") from None
        self._check_record(name, record)
        return record

    def _create(self, name: str, fold_set: FoldSet) -> bool:
        """Store ``fold_set`` as ``name`` unless a set of that name exists; return whether it
        was stored.

        The file is written whole under a temporary name, then hard-linked to its final
        name, which fails if another process stored a set first: of two processes that
        build the same name at once, one wins and the other compares against its folds.
        """
        path = self.path(name)
        pending = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
        atomic_write_json(pending, _record(fold_set, name))
        try:
            os.link(pending, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: the last writer wins
            os.replace(pending, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pending)
        fsync_dir(path.parent)
        logger.info("stored %d folds as %s", len(fold_set), path)
        return True

    # --- the fold sets --------------------------------------------------------------------

    def folds(self, splitter: _Splitter, data: Any, name: str | None = None, *,
              built: FoldSet | None = None) -> FoldSet:
        """The folds of ``splitter`` on ``data``: the stored ones if they match, else new
        ones, stored. Usually called as ``splitter.folds(data, store=store, name=name)``.

        ``built`` is the fold set ``splitter.folds(data)`` already returned, stored as it is
        instead of being built again (it must come from this splitter and data).
        """
        timeline = data if isinstance(data, Timeline) else as_timeline(data)
        identity = fold_set_id(timeline.content_hash, splitter.config)
        if built is not None and built.id != identity:
            raise SplitError(
                f"built= holds fold set {built.id}, not the folds of {splitter!r} on this data "
                f"({identity}); pass the set splitter.folds(data) returned.")
        if name is None:
            name = f"{type(splitter).__name__.lower()}-{identity}"
        record = self.read(name)
        if record is None:
            fold_set = (splitter._build(timeline, name) if built is None
                        else dataclasses.replace(built, name=name))
            if self._create(name, fold_set):
                return fold_set
            record = self.read(name)  # another process stored this name meanwhile
            if record is None:
                raise self._damaged(name, "it vanished while being read")
        self._check_match(name, record, splitter, timeline)
        return self._from_record(name, record, splitter, timeline)

    def _check_match(self, name: str, record: dict[str, Any], splitter: _Splitter,
                     timeline: Timeline) -> None:
        stored_data, stored_splitter = record["data"], record["splitter"]
        config = canonical(splitter.config, "splitter")
        changes, kinds = [], []
        if stored_data["content_hash"] != timeline.content_hash:
            dates = timeline.dates if timeline.n > 0 else None
            old = _data_text(stored_data["n_dates"], stored_data["first_date"],
                             stored_data["last_date"])
            new = _data_text(timeline.n, _iso(dates[0]) if dates is not None else None,
                             _iso(dates[-1]) if dates is not None else None)
            same = " (same dates, other values)" if old == new else ""
            kinds.append("other data")
            changes.append(
                f"the data changed: content hash {stored_data['content_hash']} -> "
                f"{timeline.content_hash}, {old} -> {new}{same}")
        if stored_splitter["config"] != config:
            kinds.append("another splitter")
            changes.append(
                f"the splitter changed: {stored_splitter['repr']} -> {splitter!r} "
                f"({_config_diff(stored_splitter['config'], config)})")
        if changes:
            raise FoldSetMismatchError(
                f"fold set {name!r} in {self.directory} was built with {' and '.join(kinds)}: "
                f"{'; '.join(changes)}. Its folds (and any results keyed by their ids) belong "
                f"to the old data and splitter. Use a new name for the new folds (e.g. "
                f"name={name + '-2'!r}), or, if the old ones are no longer needed, delete "
                f"them: FoldStore({str(self.root)!r}).delete({name!r}) (the file "
                f"{self.path(name)}).")

    def _from_record(self, name: str, record: dict[str, Any], splitter: _Splitter,
                     timeline: Timeline) -> FoldSet:
        config = splitter.config
        folds = []
        for number, entry in enumerate(record["folds"]):
            if entry["number"] != number or entry["fold_id"] != fold_id(
                    timeline.content_hash, config, number):
                raise self._damaged(name, f"fold {number} has a wrong number or id")
            arrays = {}
            for key in _ARRAYS:
                positions = ranges_to_positions(entry[key])
                if positions.size and (positions[0] < 0 or positions[-1] >= timeline.n):
                    raise self._damaged(name, f"fold {number} {key} runs past the data")
                arrays[key] = positions
            folds.append(Fold.build(number, arrays["train"], arrays["test"],
                                    dates=timeline.dates, fold_id=entry["fold_id"],
                                    purged=arrays["purged"], embargoed=arrays["embargoed"],
                                    test_groups=tuple(entry["test_groups"])))
        fold_set = make_fold_set(splitter, timeline, tuple(folds), name)
        if fold_set.id != record["fold_set_id"]:
            raise self._damaged(name, "its fold_set_id does not match its content")
        logger.info("reusing %d stored folds %r from %s", len(folds), name, self.path(name))
        return fold_set

    # --- validation ----------------------------------------------------------------------

    def _damaged(self, name: str, why: str) -> FoldStoreError:
        return FoldStoreError(
            f"stored fold set {name!r} ({self.path(name)}) cannot be used: {why}. It was "
            f"damaged or edited by hand; delete it (FoldStore({str(self.root)!r})"
            f".delete({name!r})) to rebuild the folds, under a new name if results depend on "
            "the old ones.")

    def _check_record(self, name: str, record: Any) -> None:
        def need(condition: bool, why: str) -> None:
            if not condition:
                raise self._damaged(name, why)

        need(isinstance(record, dict) and record.get("format") == _FORMAT,
             f"it is not a foldwise fold set (no \"format\": {_FORMAT!r})")
        need(record.get("version") == _FORMAT_VERSION,
             f"its format version {record.get('version')!r} is not {_FORMAT_VERSION}")
        data, splitter, folds = record.get("data"), record.get("splitter"), record.get("folds")
        need(isinstance(record.get("fold_set_id"), str), "it has no fold_set_id")
        need(isinstance(data, dict) and isinstance(data.get("content_hash"), str)
             and isinstance(data.get("n_dates"), int), "its data section is incomplete")
        need(isinstance(splitter, dict) and isinstance(splitter.get("repr"), str)
             and "config" in splitter, "its splitter section is incomplete")
        need(isinstance(folds, list) and len(folds) > 0, "it has no folds")
        for entry in folds:
            need(isinstance(entry, dict) and isinstance(entry.get("number"), int)
                 and isinstance(entry.get("fold_id"), str)
                 and isinstance(entry.get("test_groups"), list), "a fold entry is incomplete")
            for key in _ARRAYS:
                pairs = entry.get(key)
                need(isinstance(pairs, list) and all(
                    isinstance(p, list) and len(p) == 2 and all(type(v) is int for v in p)
                    and p[0] < p[1] for p in pairs), f"a fold's {key} runs are malformed")
                need(all(a[1] < b[0] for a, b in itertools.pairwise(pairs)),
                     f"a fold's {key} runs are not sorted")


def _record(fold_set: FoldSet, name: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "name": name,
        "fold_set_id": fold_set.id,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "data": {
            "content_hash": fold_set.content_hash,
            "n_dates": fold_set.n_dates,
            "first_date": _iso(fold_set.first_date),
            "last_date": _iso(fold_set.last_date),
        },
        "splitter": {"repr": fold_set.splitter, "config": fold_set.config},
        "folds": [
            {"number": f.number, "fold_id": f.fold_id, "test_groups": list(f.test_groups),
             **{key: positions_to_ranges(getattr(f, key)).tolist() for key in _ARRAYS}}
            for f in fold_set
        ],
    }


def _data_text(n: int, first: str | None, last: str | None) -> str:
    """``"2148 bars 2004-08-19..2013-03-01"`` from stored ISO dates."""
    if first is None or last is None:
        return f"{n} bars (no dates)"
    return f"{n} bars {format_date(pd.Timestamp(first))}..{format_date(pd.Timestamp(last))}"


def _config_diff(old: Any, new: Any) -> str:
    """``"train: 500 -> 400, purge: 0 -> 5"`` for two canonical configurations."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"{old!r} -> {new!r}"
    parts = []
    if old.get("splitter") != new.get("splitter"):
        parts.append(f"splitter: {old.get('splitter')} -> {new.get('splitter')}")
    if old.get("version") != new.get("version"):
        parts.append(f"splitting rules version: {old.get('version')} -> {new.get('version')}")
    old_params, new_params = old.get("params") or {}, new.get("params") or {}
    for key in sorted(set(old_params) | set(new_params)):
        if old_params.get(key) != new_params.get(key):
            parts.append(f"{key}: {json.dumps(old_params.get(key))} -> "
                         f"{json.dumps(new_params.get(key))}")
    return ", ".join(parts) or "same settings, other form"
