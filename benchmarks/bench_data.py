"""Content-hash throughput of MarketData next to numpy's read bandwidth, same panel, same run.

Run: python benchmarks/bench_data.py

The hash covers every byte of a 100 MB panel (xxh3-128 over the raw buffers). The baseline
is reading the same memory once (``a.sum()``); the target is >= 10 GB/s, i.e. within ~3x
of that read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from _timing import median_time
from foldwise import MarketData

N_DATES, N_ASSETS = 5_000, 2_621  # 13.1 M float64 = 100 MB


def main() -> None:
    values = np.random.default_rng(0).uniform(1.0, 2.0, size=(N_DATES, N_ASSETS))
    index = pd.bdate_range("2000-01-03", periods=N_DATES)
    data = MarketData({"close": values}, index, [f"S{i}" for i in range(N_ASSETS)])
    array = data.array("close")
    gigabytes = data.nbytes / 1e9

    def fresh_hash() -> str:
        # A new object over the same arrays: the memoized hash is recomputed from scratch.
        return MarketData._trusted(dict(data._fields), data.index, data.assets,
                                   data.price_fields).content_hash

    hash_seconds = median_time(fresh_hash, repeat=9)
    read_seconds = median_time(array.sum, repeat=9)
    print(f"panel: {N_DATES} x {N_ASSETS} float64 = {data.nbytes / 1e6:.0f} MB")
    print(f"content_hash  {gigabytes / hash_seconds:6.1f} GB/s  ({hash_seconds * 1e3:6.1f} ms)")
    print(f"a.sum() read  {gigabytes / read_seconds:6.1f} GB/s  ({read_seconds * 1e3:6.1f} ms)")
    print(f"hash / read time ratio: {hash_seconds / read_seconds:.2f}x   "
          "(target: >= 10 GB/s, within ~3x of one read)")
    memo_seconds = median_time(lambda: data.content_hash, repeat=9, number=1000)
    print(f"memoized content_hash on the same object: {memo_seconds * 1e9:.0f} ns")


if __name__ == "__main__":
    main()
