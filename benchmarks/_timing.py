"""Timing helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(func: Callable[[], Any], *, repeat: int = 7, number: int = 1,
                warmup: int = 1) -> float:
    """Median over ``repeat`` runs of the mean seconds per call over ``number`` calls."""
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def row(label: str, ours: float, baseline: float, unit: str = "us", target: str = "") -> str:
    """A printed line: our time, the baseline's, and the ratio."""
    scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    ratio = ours / baseline
    suffix = f"   target {target}" if target else ""
    return (f"{label:<52} ours {ours * scale:10.1f} {unit}   baseline {baseline * scale:10.1f} "
            f"{unit}   ratio {ratio:5.2f}x{suffix}")
