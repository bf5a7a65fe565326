"""Brute-force reference of purge and embargo, written from their definitions with plain
Python sets and loops (no code shared with foldwise.splits), for the splitter tests."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def windows_of(test: Iterable[int]) -> list[tuple[int, int]]:
    """Maximal runs ``(a, b)`` of consecutive test positions, both ends included."""
    windows: list[tuple[int, int]] = []
    for i in sorted(set(test)):
        if windows and windows[-1][1] == i - 1:
            windows[-1] = (windows[-1][0], i)
        else:
            windows.append((i, i))
    return windows


def horizon_ends(n: int, horizon: int) -> list[int]:
    return [min(i + horizon, n - 1) for i in range(n)]


def embargo_bars(n: int, embargo: int | float) -> int:
    if isinstance(embargo, float):
        return math.ceil(embargo * n - 1e-9) if embargo > 0 else 0
    return embargo


def purge_embargo(n: int, window: Iterable[int], test: Iterable[int], ends: Sequence[int],
                  embargo: int) -> tuple[list[int], list[int], list[int]]:
    """``(train, purged, embargoed)`` by the definitions:

    a test window [a, b] covers [a, E] with E = max(ends[a..b]); bar i is purged if its label
    [i, ends[i]] overlaps [a, E] of some window; it is embargoed if E < i <= E + embargo for
    some window and it is not purged.
    """
    test_set = set(test)
    candidates = set(window) - test_set
    covered = [(a, max(ends[j] for j in range(a, b + 1))) for a, b in windows_of(test_set)]
    purged = {i for i in candidates
              if any(i <= cover_end and ends[i] >= a for a, cover_end in covered)}
    embargoed = {i for i in candidates - purged
                 if any(cover_end < i <= cover_end + embargo for _, cover_end in covered)}
    train = candidates - purged - embargoed
    return sorted(train), sorted(purged), sorted(embargoed)


def kfold_groups(n: int, k: int) -> list[list[int]]:
    """Contiguous groups as scikit-learn's KFold makes them (first n % k one bar longer)."""
    groups, start = [], 0
    for g in range(k):
        size = n // k + (1 if g < n % k else 0)
        groups.append(list(range(start, start + size)))
        start += size
    return groups
