"""``foldwise cache stats | runs | verify | evict | clear``."""

from __future__ import annotations

import argparse

import pytest

from foldwise import BacktestCache
from foldwise.cli import _duration, _size, main
from tests._cache_support import make_data, trend

DATA = make_data()


@pytest.fixture
def root(tmp_path):
    cache = BacktestCache(tmp_path, keep_arrays="always", artifacts="files")
    for lookback in (3, 5):
        cache.get_or_run(trend, {"lookback": lookback}, DATA)
    cache.metrics(trend, {"lookback": 3}, DATA, window=(0, 100))
    cache.close()
    return tmp_path


def test_stats(root, capsys):
    assert main(["cache", "--dir", str(root), "stats"]) == 0
    out = capsys.readouterr().out
    assert "3 (2 full, of which 2 keep their arrays, 2 with positions; 1 slices)" in out
    assert "trend" in out


def test_dir_after_the_action_and_from_the_environment(root, capsys, monkeypatch):
    assert main(["cache", "stats", "--dir", str(root)]) == 0
    assert "3 (2 full" in capsys.readouterr().out
    monkeypatch.setenv("FOLDWISE_DIR", str(root))
    assert main(["cache", "stats"]) == 0
    assert str(root) in capsys.readouterr().out


def test_runs(root, capsys):
    assert main(["cache", "--dir", str(root), "runs", "--sort", "sharpe"]) == 0
    out = capsys.readouterr().out
    assert "params_lookback" in out
    assert "sharpe" in out
    assert len(out.splitlines()) == 4
    assert main(["cache", "--dir", str(root), "runs", "--kind", "slice"]) == 0
    assert "window_start" in capsys.readouterr().out
    assert main(["cache", "--dir", str(root), "runs", "--sort", "nope"]) == 2


def test_verify_and_repair(root, capsys):
    assert main(["cache", "--dir", str(root), "verify"]) == 0
    assert "all intact" in capsys.readouterr().out
    for path in (root / "cache" / "artifacts").rglob("*.parquet"):
        path.write_bytes(b"garbage")
        break
    assert main(["cache", "--dir", str(root), "verify"]) == 1
    assert "corrupted" in capsys.readouterr().out
    assert main(["cache", "--dir", str(root), "verify", "--repair"]) == 0
    assert main(["cache", "--dir", str(root), "verify"]) == 0


def test_evict_and_clear(root, capsys):
    assert main(["cache", "--dir", str(root), "evict"]) == 2
    assert main(["cache", "--dir", str(root), "evict", "--older-than", "1d"]) == 0
    assert "evicted 0" in capsys.readouterr().out
    assert main(["cache", "--dir", str(root), "evict", "--max-bytes", "0"]) == 0
    assert "evicted 2" in capsys.readouterr().out
    assert main(["cache", "--dir", str(root), "clear"]) == 1
    assert BacktestCache(root).stats().runs == 1
    assert main(["cache", "--dir", str(root), "clear", "--yes"]) == 0
    assert BacktestCache(root).stats().runs == 0


def test_cache_without_action_shows_help(capsys):
    assert main(["cache"]) == 2
    assert "stats" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "size"), [("0", 0), ("1024", 1024), ("2K", 2048),
                                            ("1.5GB", 1536 * 1024**2), ("500m", 500 * 1024**2)])
def test_sizes(text, size):
    assert _size(text) == size


@pytest.mark.parametrize(("text", "seconds"), [("60", 60.0), ("12h", 43200.0), ("30d", 2592000.0),
                                               ("90min", 5400.0), ("2 weeks", 1209600.0), ("1.5h", 5400.0)])
def test_durations(text, seconds):
    assert _duration(text) == seconds


@pytest.mark.parametrize("text", ["lots", "1Q", ""])
def test_bad_sizes_and_durations(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _size(text)
    with pytest.raises(argparse.ArgumentTypeError):
        _duration(text or "soon")
