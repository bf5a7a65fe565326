"""Pins: the runs stored studies reference, which ``evict`` and ``clear`` keep.

A study's fold table, stitched curve and overfitting statistics read runs by key. Those
runs can always be re-created (the study keeps what it needs to run them again), but a
report that has to re-run hundreds of backtests because a routine eviction took them is
slow for no reason. So each study pins the keys it references, and eviction leaves them
alone unless asked to include them.

One JSON file per owner (a study in its storage), ``<root>/pins/<hash of the owner>.json``
holding ``{"format": 1, "owner": ..., "runs": [digests]}``, replaced atomically. A pin file
that cannot be read is logged and ignored: pins protect runs from eviction, they are not
needed to read anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from foldwise._atomic import atomic_write_json

__all__ = ["PIN_DIR", "Pins"]

logger = logging.getLogger(__name__)

#: Subdirectory of the foldwise directory holding the pin files (outside the cache
#: directory, so clearing the cache keeps them).
PIN_DIR = "pins"
_FORMAT = 1


class Pins:
    """The pin files of one foldwise directory.

    Parameters
    ----------
    root
        The foldwise directory (the cache's ``root``).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.directory = Path(root) / PIN_DIR

    def _path(self, owner: str) -> Path:
        name = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]
        return self.directory / f"{name}.json"

    def set(self, owner: str, digests: Iterable[str]) -> None:
        """Make ``digests`` the runs pinned by ``owner`` (replacing what it pinned)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self._path(owner), {"format": _FORMAT, "owner": owner,
                                              "runs": sorted(set(digests))})

    def drop(self, owner: str) -> bool:
        """Unpin every run of ``owner``; True if it had pins."""
        try:
            os.unlink(self._path(owner))
        except FileNotFoundError:
            return False
        return True

    def owners(self) -> dict[str, frozenset[str]]:
        """Every owner and the digests it pins."""
        found: dict[str, frozenset[str]] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.json")):
            try:
                content = json.loads(path.read_text(encoding="utf-8"))
                owner, runs = str(content["owner"]), frozenset(map(str, content["runs"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("pin file %s cannot be read (%s); it is ignored (delete it, or "
                               "run the study's optimize call again to rewrite it)", path, exc)
                continue
            found[owner] = runs
        return found

    def pinned(self) -> dict[str, list[str]]:
        """Digest -> the owners that pin it."""
        by_digest: dict[str, list[str]] = {}
        for owner, runs in self.owners().items():
            for digest in runs:
                by_digest.setdefault(digest, []).append(owner)
        return by_digest

    def clear(self) -> None:
        """Remove every pin file."""
        for path in self.directory.glob("*.json") if self.directory.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
