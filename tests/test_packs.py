"""Artifacts appended to pack files: one per process, checked per record, deleted whole."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os

import numpy as np
import pytest

from foldwise import BacktestCache
from foldwise.cache import _artifacts, _maintenance
from foldwise.errors import CacheArgumentError
from tests._cache_support import make_data, trend

DATA = make_data()


def _cache(root) -> BacktestCache:
    return BacktestCache(root, keep_arrays="always")  # packs are the default layout


def _fill(cache: BacktestCache, lookbacks=range(2, 6)) -> list:
    for lookback in lookbacks:
        cache.get_or_run(trend, {"lookback": lookback}, DATA)
    return sorted(cache.index.rows(kind="full"), key=lambda row: row.artifact)


def _pack_of(cache: BacktestCache, row):
    name, _, offset = row.artifact.partition("@")
    return cache.directory / name, int(offset)


def test_runs_of_one_process_are_appended_to_one_pack_and_read_back(tmp_path):
    cache = _cache(tmp_path)
    rows = _fill(cache)
    packs = {_pack_of(cache, row)[0] for row in rows}
    assert len(packs) == 1 and not (cache.directory / "artifacts").exists()
    pack = packs.pop()
    offsets = sorted(_pack_of(cache, row)[1] for row in rows)
    lengths = {_pack_of(cache, row)[1]: row.n_bytes for row in rows}
    assert offsets[0] == 0 and all(  # back to back, nothing else in between
        b == a + lengths[a] for a, b in itertools.pairwise(offsets))
    assert pack.stat().st_size == offsets[-1] + lengths[offsets[-1]]
    fresh = _cache(tmp_path)  # nothing in memory: read from the pack
    for lookback in range(2, 6):
        again = fresh.get(fresh.key(trend, {"lookback": lookback}, DATA)).result
        direct = cache.get_or_run(trend, {"lookback": lookback}, DATA)
        np.testing.assert_array_equal(again.arrays.net, direct.arrays.net)
        np.testing.assert_array_equal(again.arrays.positions, direct.arrays.positions)
    assert fresh.executed == 0


def test_a_damaged_record_is_a_logged_miss_and_its_neighbours_read(tmp_path, caplog):
    cache = _cache(tmp_path)
    rows = _fill(cache)
    pack, offset = _pack_of(cache, rows[1])
    with open(pack, "r+b") as handle:  # flip one byte inside the second record
        handle.seek(offset + rows[1].n_bytes // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    report = _cache(tmp_path).verify()
    assert [key for key, _ in report.corrupted] == [rows[1].key]
    assert "checksum" in report.corrupted[0][1] and not report.orphans
    fresh = _cache(tmp_path)
    for row in rows:
        params = dict(fresh.get(row.key).params)
        with caplog.at_level(logging.WARNING, logger="foldwise"):
            fresh.get_or_run(trend, params, DATA)
    assert fresh.executed == 1 and "is damaged" in caplog.text  # only the damaged one ran


def test_a_truncated_pack_loses_the_records_past_the_cut(tmp_path):
    cache = _cache(tmp_path)
    rows = _fill(cache)
    pack, offset = _pack_of(cache, rows[2])
    os.truncate(pack, offset + 10)
    report = _cache(tmp_path).verify(repair=True)
    lost = sorted(key for key, _ in report.corrupted)
    assert lost == sorted(row.key for row in rows[2:])
    assert all("truncated" in why for _, why in report.corrupted)
    assert {row.key for row in _cache(tmp_path).index.rows(kind="full")} == \
        {row.key for row in rows[:2]}


def test_a_pack_is_deleted_once_no_row_names_it_and_it_is_old(tmp_path, monkeypatch):
    writer = _cache(tmp_path)
    rows = _fill(writer)
    pack = _pack_of(writer, rows[0])[0]
    other = _cache(tmp_path)  # another object (as another process): not its pack
    other.evict(older_than=0, include_pinned=True)
    assert pack.exists()  # written a moment ago: another process may be appending
    monkeypatch.setattr(_maintenance, "PACK_GRACE", 0.0)  # as if ten minutes had passed
    _fill(writer, [7])
    writer.evict(older_than=0, include_pinned=True)
    assert pack.exists()  # the pack this process is appending to is kept
    writer._store._close_pack()  # the writer is done with it
    _fill(writer, [8])  # (a new pack)
    writer.evict(older_than=0, include_pinned=True)
    assert not pack.exists()


def test_a_full_pack_is_followed_by_a_new_one(tmp_path, monkeypatch):
    monkeypatch.setattr(_artifacts, "PACK_BYTES", 1)
    rows = _fill(_cache(tmp_path))
    assert len({row.artifact.partition("@")[0] for row in rows}) == len(rows)
    assert all(row.artifact.endswith("@0") for row in rows)


def _child(root: str) -> None:
    cache = BacktestCache(root, keep_arrays="always")
    cache.get_or_run(trend, {"lookback": 11}, DATA)


def test_a_forked_child_writes_a_pack_of_its_own(tmp_path):
    cache = _cache(tmp_path)
    _fill(cache, [9])  # the parent has a pack open
    process = multiprocessing.get_context("fork").Process(target=_child, args=(str(tmp_path),))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    _fill(cache, [10])
    rows = cache.index.rows(kind="full")
    packs = {row.key: row.artifact.partition("@")[0] for row in rows}
    params = {row.key: dict(cache.get(row.key).params)["lookback"] for row in rows}
    by_lookback = {params[key]: pack for key, pack in packs.items()}
    assert by_lookback[9] == by_lookback[10] != by_lookback[11]
    assert _cache(tmp_path).verify().corrupted == []


def test_an_unknown_layout_is_refused(tmp_path):
    with pytest.raises(CacheArgumentError, match="'packs'.*'files'"):
        BacktestCache(tmp_path, artifacts="zip")
