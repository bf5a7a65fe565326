"""Data, not code: nothing in a cache directory is ever unpickled or executed."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest

import foldwise
from foldwise import BacktestCache
from foldwise.cli import main
from foldwise.errors import CacheCorruptedError
from tests._cache_support import make_data, trend

DATA = make_data()


class _Plant:
    """Unpickling an instance opens (creates) ``path``: proof that a load happened."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_pickle_is_never_loaded(tmp_path):
    control = tmp_path / "control-was-unpickled"
    pickle.loads(pickle.dumps(_Plant(control))).close()
    assert control.exists()  # the payload works when someone does unpickle it

    marker = tmp_path / "cache-unpickled-something"
    payload = pickle.dumps(_Plant(marker))
    root = tmp_path / "fw"
    cache = BacktestCache(root, keep_arrays="always", artifacts="files")
    cache.get_or_run(trend, {"lookback": 3}, DATA)
    cache.get_or_run(trend, {"lookback": 4}, DATA)
    cache.metrics(trend, {"lookback": 3}, DATA, window=(0, 100))
    victim = cache.index.get(cache.key(trend, {"lookback": 3}, DATA).digest)
    # the pickle under the names a user might try, and in place of a real artifact
    (root / "cache" / "results.pkl").write_bytes(payload)
    (root / "cache" / "artifacts" / "model.pickle").write_bytes(payload)
    orphan = root / "cache" / "artifacts" / "ee" / ("ee" + "1" * 30 + "-00000000.parquet")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(payload)
    (root / "cache" / victim.artifact).write_bytes(payload)

    other = BacktestCache(root)
    key = other.key(trend, {"lookback": 3}, DATA)
    expected_sharpe = json.loads(victim.metrics)["sharpe"]
    assert other.get(key).metrics["sharpe"] == expected_sharpe  # metrics read no file
    with pytest.raises(CacheCorruptedError, match="It was not opened"):
        _ = other.get(key).result
    with pytest.raises(CacheCorruptedError):
        _ = other.get(other.key(trend, {"lookback": 3}, DATA, window=(0, 100))).result
    report = other.verify()
    assert [k for k, _ in report.corrupted] == [victim.key]
    assert report.foreign == ["artifacts/model.pickle", "results.pkl"]
    assert report.orphans == [orphan.relative_to(root / "cache").as_posix()]
    other.runs(kind="all")
    other.best("trend", "sharpe")
    other.stats()
    other.compare([key])
    other.evict(older_than="1d")
    assert main(["cache", "--dir", str(root), "verify"]) == 1
    assert main(["cache", "--dir", str(root), "runs"]) == 0
    rerun = other.get_or_run(trend, {"lookback": 3}, DATA)  # a logged miss: run again
    assert len(rerun) == len(DATA)
    other.verify(repair=True, grace=0)
    other.clear()
    assert not marker.exists()
    assert (root / "cache" / "results.pkl").exists()  # foreign files are left alone


def test_a_pickle_in_place_of_the_index_is_refused_unopened(tmp_path):
    marker = tmp_path / "index-unpickled"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "index.sqlite").write_bytes(pickle.dumps(_Plant(marker)))
    with pytest.raises(CacheCorruptedError, match="not a usable cache index"):
        BacktestCache(tmp_path)
    assert not marker.exists()


_FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
_FORBIDDEN_CALLS = {"read_pickle", "to_pickle", "loads", "load"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in _FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in _FORBIDDEN_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            if name in ("read_pickle", "to_pickle") or (
                    name in _FORBIDDEN_CALLS and owner in ("joblib", "np", "numpy")):
                found.append(f"{owner}.{name}")
            found += [f"{name}(allow_pickle=True)" for kw in node.keywords
                      if kw.arg == "allow_pickle" and not (
                          isinstance(kw.value, ast.Constant) and kw.value.value is False)]
    return [f"{path.name}: {v}" for v in found]


def test_no_module_of_foldwise_can_unpickle():
    package = Path(foldwise.__file__).parent
    violations = [v for path in sorted(package.rglob("*.py")) for v in _violations(path)]
    assert violations == []


def test_a_link_in_place_of_an_artifact_is_refused_unread(tmp_path):
    cache = BacktestCache(tmp_path, keep_arrays="always", artifacts="files")
    cache.get_or_run(trend, {}, DATA)
    row = cache.index.get(cache.key(trend, {}, DATA).digest)
    path = tmp_path / "cache" / row.artifact
    path.unlink()
    path.symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(CacheCorruptedError, match="not a regular file"):
        _ = BacktestCache(tmp_path).get(row.key).result
    assert [k for k, _ in cache.verify().corrupted] == [row.key]


def test_a_same_size_change_is_caught_by_the_checksum(tmp_path):
    cache = BacktestCache(tmp_path, keep_arrays="always", artifacts="files")
    cache.get_or_run(trend, {}, DATA)
    row = cache.index.get(cache.key(trend, {}, DATA).digest)
    path = tmp_path / "cache" / row.artifact
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CacheCorruptedError, match="does not match the checksum"):
        _ = BacktestCache(tmp_path).get(row.key).result
