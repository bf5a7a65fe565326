"""Canonical, type-exact JSON of parameters and configurations, for keys and ids.

Two parameter sets get the same canonical form exactly when they must give the same
result: key order does not matter, types do (``5``, ``5.0`` and ``"5"`` differ, ``True`` is
not ``1``, a tuple is not a list), numpy scalars count as the Python value they hold, dates
and paths become strings. Anything else is refused with
:class:`~foldwise.errors.ParameterError` naming the parameter — never a ``repr()`` with a
memory address in it, which would make every run a miss.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

from foldwise._hashing import hash_text
from foldwise.errors import ParameterError

__all__ = ["canonical", "canonical_hash", "canonical_json", "from_canonical"]

# JSON keeps int / float / str / bool / null apart on its own; tuples and special floats
# need a tag. Tags are single-key objects whose key cannot be a parameter name.
_TUPLE, _FLOAT = "__tuple__", "__float__"


def canonical(value: Any, name: str = "params") -> Any:
    """Return the canonical JSON-able form of ``value``.

    Parameters
    ----------
    value
        None, bool, int, float, str, numpy scalars, dates, times, timedeltas, paths,
        pandas offsets, and dicts (string keys) / lists / tuples of these.
    name
        How to name ``value`` in an error message (e.g. ``"params['fast']"``).

    Raises
    ------
    ParameterError
        For any other type, naming the offending parameter.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        if isinstance(value, (np.bool_, np.integer, np.floating, np.str_)):
            return canonical(value.item(), name)
        raise ParameterError(
            f"{name} is a numpy {value.dtype} scalar, which has no canonical form; use a "
            "bool, int, float or str.")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            if isinstance(key, np.str_):
                key = str(key)
            if not isinstance(key, str):
                raise ParameterError(
                    f"{name} has a key {key!r} of type {type(key).__name__}; keys of nested "
                    "parameter dicts must be strings.")
            if key in (_TUPLE, _FLOAT):
                raise ParameterError(f"{name} uses the reserved key {key!r}; rename it.")
            out[key] = canonical(value[key], f"{name}[{key!r}]")
        return out
    if isinstance(value, list):
        return [canonical(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {_TUPLE: [canonical(v, f"{name}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, (pd.Timedelta, _dt.timedelta)):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, pd.offsets.BaseOffset):
        return value.freqstr
    if isinstance(value, (PurePath, os.PathLike)):
        return os.fspath(value)
    raise ParameterError(
        f"{name} = {type(value).__module__}.{type(value).__qualname__} object cannot be part "
        "of a key: parameters must be numbers, strings, booleans, None, dates, paths, or "
        "lists / tuples / dicts of these. Pass a plain value that identifies the object "
        "(e.g. its name or its settings) and build the object inside the strategy.")


def canonical_json(value: Any, name: str = "params") -> str:
    """Compact, key-sorted JSON of :func:`canonical` ``(value)``."""
    return json.dumps(canonical(value, name), sort_keys=True, separators=(",", ":"),
                      allow_nan=False)


def canonical_hash(value: Any, name: str = "params") -> str:
    """32-hex-character hash of :func:`canonical_json` ``(value)``."""
    return hash_text(canonical_json(value, name))


def from_canonical(value: Any) -> Any:
    """Undo the tags of :func:`canonical`: tuples and non-finite floats come back.

    Dates, paths and offsets stay the strings they were written as.

    Examples
    --------
    >>> from_canonical(canonical({"window": (5, 20), "cap": float("inf")}))
    {'window': (5, 20), 'cap': inf}
    """
    if isinstance(value, list):
        return [from_canonical(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            if _TUPLE in value:
                return tuple(from_canonical(v) for v in value[_TUPLE])
            if _FLOAT in value:
                return float(value[_FLOAT])
        return {k: from_canonical(v) for k, v in value.items()}
    return value
