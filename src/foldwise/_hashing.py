"""Fast, stable content hashes.

One hash family for the whole package: xxh3-128 (``xxhash``), fed the raw bytes of numpy
buffers without copying them, so hashing a panel runs at memory bandwidth. Digests are
32-character lowercase hex strings; they are stable across processes, machines and Python
sessions (xxh3 has a fixed seed and a specified output), which is what makes them usable
as keys on disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import xxhash

__all__ = ["hash_arrays", "hash_bytes", "hash_json", "hash_text"]

# Rows are fed in blocks of about this many bytes when an array is not contiguous, so a
# strided view is never copied whole.
_BLOCK_BYTES = 64 * 2**20


def _update_with_array(hasher: xxhash.xxh3_128, array: np.ndarray) -> None:
    # The shape and dtype go in first so that, e.g., (2, 3) and (3, 2) views of the same
    # bytes, or the same bytes read as int64 and float64, never collide.
    hasher.update(f"{array.dtype.str}{array.shape};".encode())
    if array.flags.c_contiguous:
        hasher.update(array.data.cast("B") if array.size else b"")
        return
    rows_per_block = max(1, _BLOCK_BYTES // max(1, array[0:1].nbytes)) if array.ndim else 1
    for start in range(0, len(array), rows_per_block):
        block = np.ascontiguousarray(array[start : start + rows_per_block])
        hasher.update(block.data.cast("B") if block.size else b"")


def hash_arrays(header: Any, arrays: Iterable[np.ndarray]) -> str:
    """Hash a JSON-serialisable header followed by the raw bytes of each array.

    Parameters
    ----------
    header
        Anything ``json.dumps`` accepts (with ``sort_keys=True``): labels, names, shapes.
    arrays
        numpy arrays, hashed in order, each with its dtype and shape.

    Returns
    -------
    str
        32 hex characters.
    """
    hasher = xxhash.xxh3_128()
    hasher.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    for array in arrays:
        _update_with_array(hasher, np.asarray(array))
    return hasher.hexdigest()


def hash_bytes(data: Any) -> str:
    """Hash a bytes-like object (bytes, a buffer, a pyarrow Buffer) to 32 hex characters."""
    return xxhash.xxh3_128_hexdigest(data)


def hash_text(text: str) -> str:
    """Hash a string (UTF-8) to 32 hex characters."""
    return hash_bytes(text.encode("utf-8"))


def hash_json(value: Any) -> str:
    """Hash the canonical JSON form of ``value`` (sorted keys, no whitespace)."""
    return hash_text(json.dumps(value, sort_keys=True, separators=(",", ":")))
