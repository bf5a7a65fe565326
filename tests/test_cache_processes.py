"""Real processes: killed writers, concurrent writers, code edited between runs."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import traceback

import numpy as np
import pytest

from foldwise import BacktestCache, Strategy
from tests._cache_support import make_data, trend

pytestmark = pytest.mark.slow

DATA = make_data()
FOLDS = [(0, 90), (90, 180), (180, 260)]
_fork = multiprocessing.get_context("fork")


def _params(i: int) -> dict:
    return {"lookback": 2 + i % 15, "gross": float(1 + i // 15)}


def _check_entries(cache: BacktestCache) -> int:
    """Every listed entry loads, equal to a fresh computation; returns how many there are."""
    rows = cache.index.rows()
    for row in rows:
        record = cache.get(row.key)
        params = dict(record.params)
        expected = Strategy(trend).run(DATA, params)
        if record.window is not None:
            expected = expected.islice(record.window.start, record.window.stop)
        else:
            loaded = record.result
            np.testing.assert_array_equal(loaded.returns.to_numpy(), expected.returns.to_numpy())
            np.testing.assert_array_equal(loaded.positions.to_numpy(), expected.positions.to_numpy())
        assert dict(record.metrics) == pytest.approx(expected.metrics(), nan_ok=True)
    return len(rows)


# --- kill -9 ----------------------------------------------------------------------------


def _writer(root: str, seed: int, ready) -> None:
    rng = random.Random(seed)
    cache = BacktestCache(root, keep_arrays="always")  # arrays in packs, checked below
    ready.set()
    while True:
        i = rng.randrange(45)
        if rng.random() < 0.08:
            cache.evict(max_bytes=rng.randrange(0, 200_000))
        else:
            cache.metrics(trend, _params(i), DATA, window=rng.choice(FOLDS))


def test_writers_killed_at_random_moments_leave_a_readable_cache(tmp_path):
    root = str(tmp_path / "fw")
    rng = random.Random(20240601)
    for round_ in range(20):
        ready = _fork.Event()
        child = _fork.Process(target=_writer, args=(root, round_, ready))
        child.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
    cache = BacktestCache(root)
    report = cache.verify()
    print(f"after 20 kills: {report.checked} entries, {len(report.orphans)} orphan files, "
          f"{len(report.temporary)} unfinished writes")
    assert report.missing == []
    assert report.corrupted == []
    assert report.foreign == []
    assert _check_entries(cache) > 0
    cache.verify(repair=True, grace=0)  # remove the unfinished writes of killed processes
    clean = cache.verify()
    assert clean.ok
    assert clean.orphans == clean.temporary == []
    _check_entries(BacktestCache(root))


# --- concurrent processes -------------------------------------------------------------------


def _worker(cache: BacktestCache | str, seed: int, start, results) -> None:
    try:
        if isinstance(cache, str):
            cache = BacktestCache(cache, keep_arrays="always")
        rng = random.Random(seed)
        mine: list[str] = []
        start.wait()
        for step in range(300):
            roll = rng.random()
            i = rng.randrange(30)
            if roll < 0.3:
                cache.metrics(trend, _params(i), DATA, window=rng.choice(FOLDS))
                mine.append(cache.key(trend, _params(i), DATA).digest)
            elif roll < 0.5:
                cache.get_or_run(trend, _params(i), DATA)
                mine.append(cache.key(trend, _params(i), DATA).digest)
            elif roll < 0.7:
                key = cache.key(trend, {"lookback": 3, "gross": float(seed * 1000 + step)}, DATA,
                                window=rng.choice(FOLDS))
                cache.put(key, metrics={"sharpe": float(step), "calmar": float("nan")})
                mine.append(key.digest)
            elif mine and cache.get(rng.choice(mine)) is None:
                raise AssertionError("an entry this process stored is gone")
        results.put(json.dumps({"keys": mine}))
    except BaseException:
        results.put(json.dumps({"error": traceback.format_exc()}))


def test_four_processes_share_one_cache(tmp_path):
    root = str(tmp_path / "fw")
    parent = BacktestCache(root, keep_arrays="always")
    parent.get_or_run(trend, _params(0), DATA)  # the inherited object holds a connection
    start, results = _fork.Event(), _fork.Queue()
    # two workers open the directory themselves, two use the parent's object after fork
    targets = [root, root, parent, parent]
    workers = [_fork.Process(target=_worker, args=(target, n, start, results))
               for n, target in enumerate(targets)]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [json.loads(results.get(timeout=300)) for _ in workers]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    errors = [o["error"] for o in outcomes if "error" in o]
    assert errors == []
    stored = {key for o in outcomes for key in o["keys"]}
    fresh = BacktestCache(root)
    assert {key for key in stored if fresh.get(key) is None} == set()
    report = fresh.verify()
    assert report.ok
    assert report.orphans == []
    for row in fresh.index.rows(kind="full"):
        record = fresh.get(row.key)
        expected = Strategy(trend).run(DATA, dict(record.params))
        np.testing.assert_array_equal(record.result.returns.to_numpy(),
                                      expected.returns.to_numpy())


# --- code edited between two runs ------------------------------------------------------------

_RUN = """
import sys
sys.path.insert(0, {directory!r})
from foldwise import BacktestCache, datasets
from edited_strategy import follow
cache = BacktestCache({root!r})
data = datasets.load_goog()
hit = cache.get(cache.key(follow, {{"lookback": 5}}, data)) is not None
cache.get_or_run(follow, {{"lookback": 5}}, data)
print("hit" if hit else "miss")
"""

_HELPER = """
def smooth(values, n):
    return values
"""

_STRATEGY = """
import numpy as np
from edited_helper import smooth

def follow(data, lookback=5):
    close = smooth(data.array("close"), lookback)
    return np.ones_like(close)
"""


def test_editing_a_helper_between_processes_is_a_miss(tmp_path):
    directory, root = tmp_path / "code", tmp_path / "fw"
    directory.mkdir()
    (directory / "edited_strategy.py").write_text(textwrap.dedent(_STRATEGY))
    script = _RUN.format(directory=str(directory), root=str(root))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def run(helper: str) -> str:
        (directory / "edited_helper.py").write_text(textwrap.dedent(helper))
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=env, timeout=120, check=True)
        return done.stdout.strip()

    assert run(_HELPER) == "miss"
    assert run(_HELPER + "\n# a comment\n") == "hit"
    assert run(_HELPER.replace("return values", "return values * 0.5")) == "miss"
    assert run(_HELPER) == "hit"  # the original code again: its entry is still there
