"""Exact JSON of result objects: Python values, numpy arrays and pandas tables that come back
from ``json.loads(json.dumps(...))`` equal to the last bit, without pickle.

:func:`encode` turns a value into plain JSON (dicts with string keys, lists, str, int, float,
bool, None) that ``json.dumps`` writes (``allow_nan=True``: NaN and infinities are written
as ``NaN`` and ``Infinity``); :func:`decode` turns that back into the value. JSON keeps
int, float, str, bool and null apart on its own, and Python writes a float as its shortest
``repr``, which reads back as the same float. What JSON does not have is written as a
tagged object, a dict with the key ``"$type"``:

==================  ========================================================================
``float``           a NaN whose bits are not those of ``float("nan")`` (a negative NaN, a
                    payload): ``{"$type": "float", "bits": "fff8000000000000"}``
``tuple``           ``{"$type": "tuple", "items": [...]}`` (a list stays a JSON list)
``dict``            a dict with a key that is not a string, or with the key ``"$type"``:
                    ``{"$type": "dict", "items": [[key, value], ...]}`` (any other dict is a
                    JSON object, in its order)
``numpy``           a numpy scalar: its dtype and value (``np.float64(1.5)`` stays numpy)
``ndarray``         a numpy array: dtype (``"<f8"``), shape and its elements in C order
``timestamp``       a :class:`pandas.Timestamp`: its integer value in its unit, the unit,
                    and the time zone by name; ``NaT``: pandas' missing time
``index``           a :class:`pandas.Index`: name, dtype and values (``range`` a
                    :class:`~pandas.RangeIndex`, ``multiindex`` a
                    :class:`~pandas.MultiIndex` by its levels, codes and names)
``frame``           a :class:`pandas.DataFrame`: its index, its columns (an index) and one
                    array per column with its dtype
==================  ========================================================================

Array elements are written as the same JSON values: floats as floats (a NaN with other
bits than the canonical one tagged with its bits), integers and booleans as such,
datetime64 and timedelta64 as their int64 values, object arrays element by element. The
dtypes supported in arrays, indexes and table columns: numpy booleans, integers,
floats up to 64 bits, datetime64, timedelta64, unicode strings and objects (holding values
:func:`encode` supports), pandas' string dtype (``"str"``, either storage, either missing
value) and tz-aware datetimes. Anything else (complex numbers, categoricals, nullable
integers, periods, arbitrary objects) raises :class:`UnsupportedValueError` naming where it
was, rather than writing something that reads back different.

Not kept: a DataFrame's ``attrs`` and ``flags``; a time zone is kept by its name (``str(tz)``),
so it reads back as pandas parses that name.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import pandas as pd

from foldwise.errors import FoldwiseError

__all__ = ["TAG", "MalformedJSONError", "UnsupportedValueError", "decode", "encode",
           "fields_from_json", "fields_to_json"]

#: The key of a tagged object.
TAG = "$type"

_NAN_BITS = struct.pack(">d", math.nan)

_SUPPORTED = ("None, bool, int, float, str, lists, tuples and dicts of these, numpy scalars "
              "and arrays (bool, int, float up to 64 bits, datetime64, timedelta64, unicode, "
              "object), pandas Timestamps and NaT, Index, RangeIndex, MultiIndex and "
              "DataFrame (numpy, str and tz-aware datetime columns)")


class UnsupportedValueError(FoldwiseError, TypeError):
    """A value the exact JSON cannot hold (its type is named, with where it was)."""


class MalformedJSONError(FoldwiseError, ValueError):
    """JSON that :func:`encode` did not write (a missing field, an unknown tag)."""


def _unsupported(value: Any, where: str, what: str = "") -> UnsupportedValueError:
    kind = what or f"a value of type {type(value).__module__}.{type(value).__qualname__}"
    return UnsupportedValueError(
        f"cannot write {where} as exact JSON: {kind} is not supported (supported: "
        f"{_SUPPORTED}). Convert it to one of these first.")


# --- values -----------------------------------------------------------------------------------


def encode(value: Any, where: str = "the value") -> Any:
    """The plain JSON form of ``value``, which :func:`decode` turns back into it exactly.

    Parameters
    ----------
    value
        A value of a type the module docstring lists.
    where
        What ``value`` is, for the error message (``"SPAResult.best"``).

    Returns
    -------
    Any
        Dicts with string keys, lists, str, int, float, bool and None only.

    Raises
    ------
    UnsupportedValueError
        ``value`` holds a type this format cannot give back exactly (a ``TypeError``).

    Examples
    --------
    >>> encode({"a": (1, 2.5)})
    {'a': {'$type': 'tuple', 'items': [1, 2.5]}}
    >>> decode(encode({"a": (1, 2.5)}))
    {'a': (1, 2.5)}
    """
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if math.isnan(value) and struct.pack(">d", value) != _NAN_BITS:
            return {TAG: "float", "bits": struct.pack(">d", value).hex()}
        return value
    if kind is list:
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is tuple:
        return {TAG: "tuple", "items": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if kind is dict:
        if all(type(k) is str for k in value) and TAG not in value:
            return {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {TAG: "dict", "items": [[encode(k, f"a key of {where}"),
                                         encode(v, f"{where}[{k!r}]")]
                                        for k, v in value.items()]}
    if isinstance(value, np.ndarray) and kind is np.ndarray:
        return {TAG: "ndarray", "dtype": _numpy_dtype(value.dtype, where),
                "shape": list(value.shape), "data": _elements(value.reshape(-1), where)}
    if isinstance(value, np.generic):
        array = np.asarray(value)
        return {TAG: "numpy", "dtype": _numpy_dtype(array.dtype, where),
                "data": _elements(array.reshape(-1), where)}
    if value is pd.NaT:
        return {TAG: "NaT"}
    if kind is pd.Timestamp:
        return {TAG: "timestamp", "value": int(value.asm8.view("i8")), "unit": value.unit,
                "tz": None if value.tz is None else str(value.tz)}
    if isinstance(value, pd.Index):
        return _encode_index(value, where)
    if kind is pd.DataFrame:
        return _encode_frame(value, where)
    raise _unsupported(value, where)


def decode(value: Any, where: str = "the value") -> Any:
    """The value :func:`encode` wrote as ``value`` (read back by ``json.loads``).

    Parameters
    ----------
    value
        JSON as :func:`encode` returned it, or as ``json.loads`` reads it back.
    where
        What it is, for the error message.

    Returns
    -------
    Any
        The value, of the type it had (a tuple a tuple, an ``np.int64`` an ``np.int64``).

    Raises
    ------
    MalformedJSONError
        ``value`` was not written by :func:`encode` (a ``ValueError``).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise MalformedJSONError(
            f"{where} holds a {type(value).__name__}, which is not JSON; pass what json.loads "
            "read.")
    if TAG not in value:
        return {k: decode(v, f"{where}[{k!r}]") for k, v in value.items()}
    tag = value[TAG]
    try:
        if tag == "float":
            return struct.unpack(">d", bytes.fromhex(value["bits"]))[0]
        if tag == "tuple":
            return tuple(decode(v, f"{where}[{i}]") for i, v in enumerate(value["items"]))
        if tag == "dict":
            return {decode(k, f"a key of {where}"): decode(v, where) for k, v in value["items"]}
        if tag == "ndarray":
            dtype = np.dtype(value["dtype"])
            return _array(value["data"], dtype, where).reshape(value["shape"])
        if tag == "numpy":
            return _array(value["data"], np.dtype(value["dtype"]), where)[0]
        if tag == "NaT":
            return pd.NaT
        if tag == "timestamp":
            stamp = pd.Timestamp(np.datetime64(int(value["value"]), value["unit"]))
            return stamp if value["tz"] is None else stamp.tz_localize("UTC").tz_convert(
                value["tz"])
        if tag in ("index", "range", "multiindex"):
            return _decode_index(value, where)
        if tag == "frame":
            return _decode_frame(value, where)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FoldwiseError):
            raise
        raise MalformedJSONError(
            f"{where} is a malformed {tag!r} object ({type(exc).__name__}: {exc}); it was not "
            "written by foldwise's exact JSON.") from exc
    raise MalformedJSONError(
        f"{where} has the unknown tag {TAG!r}: {tag!r}; it was written by a newer foldwise or "
        "by something else.")


# --- numpy arrays -------------------------------------------------------------------------------


def _numpy_dtype(dtype: np.dtype[Any], where: str) -> str:
    if dtype.kind in "biuMmUO" or (dtype.kind == "f" and dtype.itemsize <= 8):
        return dtype.str
    raise _unsupported(None, where, f"a numpy array or scalar of dtype {dtype}")


def _bits_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The unsigned integer dtype of the float ``dtype``'s size and byte order."""
    return np.dtype(f"u{dtype.itemsize}").newbyteorder(dtype.byteorder)


def _elements(flat: np.ndarray, where: str) -> list[Any]:
    """The JSON elements of a 1-d numpy array (its dtype checked by :func:`_numpy_dtype`)."""
    kind = flat.dtype.kind
    if kind in "Mm":
        return flat.view(np.dtype("i8").newbyteorder(flat.dtype.byteorder)).tolist()
    if kind == "O":
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(flat)]
    items = flat.tolist()
    if kind == "f":
        nan = np.isnan(flat)
        if nan.any():
            bits = np.ascontiguousarray(flat).view(_bits_dtype(flat.dtype))
            canonical = np.array([math.nan], dtype=flat.dtype).view(_bits_dtype(flat.dtype))[0]
            width = 2 * flat.dtype.itemsize
            for i in np.flatnonzero(nan & (bits != canonical)):
                items[i] = {TAG: "float", "bits": format(int(bits[i]), f"0{width}x")}
    return items


def _array(data: list[Any], dtype: np.dtype[Any], where: str) -> np.ndarray:
    """The 1-d numpy array of :func:`_elements`' ``data``."""
    kind = dtype.kind
    if kind in "Mm":
        return np.array(data, dtype=np.dtype("i8").newbyteorder(dtype.byteorder)).view(dtype)
    if kind == "O":
        out = np.empty(len(data), dtype=object)
        for i, v in enumerate(data):
            out[i] = decode(v, f"{where}[{i}]")
        return out
    if kind == "f":
        tagged = [i for i, v in enumerate(data) if isinstance(v, dict)]
        values = np.array([math.nan if isinstance(v, dict) else v for v in data], dtype=dtype)
        bits = values.view(_bits_dtype(dtype))
        for i in tagged:
            bits[i] = int(data[i]["bits"], 16)
        return values
    return np.array(data, dtype=dtype)


# --- pandas arrays, indexes and tables ----------------------------------------------------------


def _encode_values(values: Any, dtype: Any, where: str) -> dict[str, Any]:
    """``{"dtype", "data"}`` of an index's or a column's values."""
    if isinstance(dtype, np.dtype):
        return {"dtype": _numpy_dtype(dtype, where),
                "data": _elements(np.asarray(values, dtype=dtype), where)}
    if isinstance(dtype, pd.StringDtype):
        na = "NA" if dtype.na_value is pd.NA else "nan"
        return {"dtype": {"string": dtype.storage, "na_value": na},
                "data": [None if pd.isna(v) else str(v) for v in values]}
    if isinstance(dtype, pd.DatetimeTZDtype):
        return {"dtype": {"datetime64": dtype.unit, "tz": str(dtype.tz)},
                "data": pd.DatetimeIndex(values).asi8.tolist()}
    raise _unsupported(None, where, f"pandas dtype {dtype}")


def _decode_values(spec: Mapping[str, Any], where: str) -> Any:
    """The numpy or pandas array of :func:`_encode_values`."""
    dtype, data = spec["dtype"], spec["data"]
    if isinstance(dtype, str):
        return _array(data, np.dtype(dtype), where)
    if "string" in dtype:
        na = pd.NA if dtype["na_value"] == "NA" else np.nan
        return pd.array(data, dtype=pd.StringDtype(dtype["string"], na_value=na))
    if "datetime64" in dtype:
        naive = np.array(data, dtype="i8").view(f"M8[{dtype['datetime64']}]")
        return pd.DatetimeIndex(naive).tz_localize("UTC").tz_convert(dtype["tz"]).array
    raise MalformedJSONError(f"{where} has an unknown dtype {dtype!r}.")


def _column_values(column: pd.Series | pd.Index) -> Any:
    return column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array


def _encode_index(index: pd.Index, where: str) -> dict[str, Any]:
    if type(index) is pd.RangeIndex:
        return {TAG: "range", "start": index.start, "stop": index.stop, "step": index.step,
                "name": encode(index.name, f"the name of {where}")}
    if isinstance(index, pd.MultiIndex):
        return {TAG: "multiindex",
                "levels": [_encode_index(level, f"a level of {where}") for level in index.levels],
                "codes": [np.asarray(codes).tolist() for codes in index.codes],
                "names": [encode(n, f"a name of {where}") for n in index.names]}
    if type(index) not in (pd.Index, pd.DatetimeIndex, pd.TimedeltaIndex):
        raise _unsupported(index, where)
    out = {TAG: "index", "name": encode(index.name, f"the name of {where}"),
           **_encode_values(_column_values(index), index.dtype, where)}
    freq = getattr(index, "freq", None)
    if freq is not None:
        out["freq"] = freq.freqstr
    return out


def _decode_index(value: Mapping[str, Any], where: str) -> pd.Index:
    if value[TAG] == "range":
        return pd.RangeIndex(value["start"], value["stop"], value["step"],
                             name=decode(value["name"], where))
    if value[TAG] == "multiindex":
        levels: list[Any] = [_decode_index(level, where) for level in value["levels"]]
        return pd.MultiIndex(levels=levels, codes=value["codes"],
                             names=[decode(n, where) for n in value["names"]])
    name = decode(value["name"], where)
    values = _decode_values(value, where)
    index = pd.Index(values, dtype=values.dtype, name=name, tupleize_cols=False, copy=False)
    freq = value.get("freq")
    if freq is not None and isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        index = type(index)(index, freq=freq, name=name)
    return index


def _encode_frame(frame: pd.DataFrame, where: str) -> dict[str, Any]:
    data = []
    for i in range(frame.shape[1]):
        column = frame.iloc[:, i]
        data.append(_encode_values(_column_values(column), column.dtype,
                                   f"column {frame.columns[i]!r} of {where}"))
    return {TAG: "frame", "index": _encode_index(frame.index, f"the index of {where}"),
            "columns": _encode_index(frame.columns, f"the columns of {where}"), "data": data}


def _decode_frame(value: Mapping[str, Any], where: str) -> pd.DataFrame:
    index = _decode_index(value["index"], f"the index of {where}")
    columns = _decode_index(value["columns"], f"the columns of {where}")
    arrays = [_decode_values(spec, f"column {i} of {where}")
              for i, spec in enumerate(value["data"])]
    if len(arrays) != len(columns) or any(len(a) != len(index) for a in arrays):
        raise MalformedJSONError(
            f"{where} has {len(arrays)} columns of lengths {[len(a) for a in arrays]} for "
            f"{len(columns)} column labels and {len(index)} rows.")
    if arrays:
        # one Series per column with its own dtype: a DataFrame built from a dict of arrays
        # would turn an object column of strings into pandas' str dtype
        frame = pd.concat([pd.Series(a, dtype=a.dtype, copy=False) for a in arrays], axis=1,
                          ignore_index=True)
    else:
        frame = pd.DataFrame(index=pd.RangeIndex(len(index)))
    frame.index = index
    frame.columns = columns
    return frame


# --- dataclasses ------------------------------------------------------------------------------


def fields_to_json(obj: Any) -> dict[str, Any]:
    """``{field: encode(value)}`` of a dataclass instance, every field in order.

    Parameters
    ----------
    obj
        A dataclass instance whose fields hold values :func:`encode` supports.

    Returns
    -------
    dict
        One entry per field.
    """
    name = type(obj).__name__
    return {f.name: encode(getattr(obj, f.name), f"{name}.{f.name}")
            for f in dataclasses.fields(obj)}


def fields_from_json(cls: type, value: Any, *, raw: tuple[str, ...] = ()) -> dict[str, Any]:
    """The keyword arguments of ``cls`` from :func:`fields_to_json`'s dict, decoded.

    Parameters
    ----------
    cls
        The dataclass.
    value
        Its JSON (as read back by ``json.loads``).
    raw
        Fields returned as they are in ``value`` (the caller decodes them).

    Returns
    -------
    dict
        One entry per field of ``cls``.

    Raises
    ------
    MalformedJSONError
        ``value`` is not a dict, or its keys are not the fields of ``cls``.
    """
    name = cls.__name__
    if not isinstance(value, Mapping):
        raise MalformedJSONError(
            f"the JSON of a {name} must be a dict (from {name}.to_json()), got "
            f"{type(value).__name__}.")
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in value]
    unknown = [k for k in value if k not in names]
    if missing or unknown:
        raise MalformedJSONError(
            f"the JSON of a {name} "
            + (f"lacks {', '.join(map(repr, missing))}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"has unknown fields {', '.join(map(repr, unknown))}" if unknown else "")
            + f"; it was not written by {name}.to_json() of this foldwise.")
    return {n: value[n] if n in raw else decode(value[n], f"{name}.{n}") for n in names}


class ExactJSONFields:
    """``to_json`` / ``from_json`` for a dataclass whose fields :func:`encode` supports:
    every value back of its type and to the last bit.

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> from foldwise.snooping import SPAResult, spa_test
    >>> r = np.random.default_rng(0).normal(0.0, 0.01, size=(300, 5))
    >>> result = spa_test(r, n_bootstrap=100, seed=0)
    >>> back = SPAResult.from_json(json.loads(json.dumps(result.to_json())))
    >>> back == result, np.array_equal(back.bootstrap_statistics,
    ...                                result.bootstrap_statistics)
    (True, True)
    """

    def to_json(self) -> dict[str, Any]:
        """Every field, as plain JSON (see :func:`encode`)."""
        return fields_to_json(self)

    @classmethod
    def from_json(cls, value: Any) -> Self:
        """The object :meth:`to_json` wrote.

        Raises
        ------
        ValueError
            ``value`` was not written by :meth:`to_json` (a missing or unknown field, an
            unknown tag).
        """
        return cls(**fields_from_json(cls, value))
