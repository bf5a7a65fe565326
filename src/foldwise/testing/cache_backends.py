"""The contract suite of cache index backends (:class:`foldwise.cache.IndexBackend`).

Every backend shipped with foldwise runs it (``tests/test_cache_backends.py``: the SQLite
and memory indexes of :data:`BACKENDS`, and :class:`~foldwise.cache.PostgresIndex` against a
real server, each test in a fresh schema), and a new backend proves itself by running it
too, with a fixture that opens the new backend on an empty store::

    import pytest
    from foldwise.cache import PostgresIndex
    from foldwise.testing.cache_backends import IndexBackendContract

    class TestPostgresIndex(IndexBackendContract):
        @pytest.fixture
        def make_backend(self, scratch_database_url):
            return lambda: PostgresIndex(scratch_database_url)

``make_backend()`` must return a handle on one and the same store each time it is called
within a test (a process-local backend returns the same instance). A backend whose
``shareable`` is true must pickle as its location: the suite sends it to a process started
from scratch (``spawn``, as joblib's loky workers are) and sees that process's writes; one
whose ``shareable`` is false must refuse to be pickled with a ``FoldwiseError``. A backend
that keeps run locks (:meth:`~foldwise.cache.IndexBackend.run_lock` returns one) must show
that they exclude other handles, other threads and other processes, and that a holder that
dies frees its lock. Requires pytest.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from foldwise.cache import IndexBackend, IndexRow, MemoryIndex, SQLiteIndex
from foldwise.errors import FoldwiseError

__all__ = ["BACKENDS", "IndexBackendContract", "make_row"]


def _memory(_: Path) -> Callable[[], IndexBackend]:
    instance = MemoryIndex()
    return lambda: instance


def _sqlite(directory: Path) -> Callable[[], IndexBackend]:
    return lambda: SQLiteIndex(directory / "index.sqlite")


#: The backends foldwise ships: name -> (scratch directory -> factory of handles).
BACKENDS: dict[str, Callable[[Path], Callable[[], IndexBackend]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


def make_row(key: str = "0" * 32, **changes: Any) -> IndexRow:
    """A valid row with every field set; ``changes`` override fields."""
    values: dict[str, Any] = {
        "key": key, "kind": "full", "strategy": "sma_crossover", "fingerprint": "f" * 32,
        "params": json.dumps({"fast": 10, "label": "é ✓"}), "data_hash": "d" * 32,
        "settings": json.dumps({"delay": 0}), "window": None, "parent": None,
        "metrics": json.dumps({"sharpe": 1.25, "calmar": float("nan")}),
        "artifact": f"artifacts/{key[:2]}/{key}-00000000.parquet", "checksum": "c" * 32,
        "n_bytes": 1234, "created": 1_700_000_000.5, "last_used": 1_700_000_000.5,
    }
    values.update(changes)
    return IndexRow(**values)


def _key(i: int) -> str:
    return f"{i:032x}"


def _read_and_insert(backend: IndexBackend, read: str, write: str) -> IndexRow | None:
    """In another process: read one row of the unpickled backend and insert another."""
    seen = backend.get(read)
    backend.insert(make_row(write))
    backend.close()
    return seen


class IndexBackendContract:
    """Tests every :class:`~foldwise.cache.IndexBackend` must pass.

    Subclass it in a test module and provide a ``make_backend`` fixture (see the module
    docstring).
    """

    @pytest.fixture
    def backend(self, make_backend: Callable[[], IndexBackend]) -> IndexBackend:
        return make_backend()

    def test_get_of_an_absent_key_is_none(self, backend: IndexBackend) -> None:
        assert backend.get(_key(1)) is None

    def test_insert_then_get_returns_every_field(self, backend: IndexBackend) -> None:
        full = make_row(_key(1))
        piece = make_row(_key(2), kind="slice", window=json.dumps([0, 10, "a", "b"]),
                         parent=_key(1), artifact=None, checksum=None, n_bytes=0)
        for row in (full, piece):
            assert backend.insert(row) == row
            assert backend.get(row.key) == row

    def test_insert_keeps_the_first_row_of_a_key(self, backend: IndexBackend) -> None:
        first = make_row(_key(1), metrics=json.dumps({"sharpe": 1.0}))
        second = make_row(_key(1), metrics=json.dumps({"sharpe": 2.0}), created=5.0)
        backend.insert(first)
        assert backend.insert(second) == first
        assert backend.get(_key(1)) == first

    def test_insert_many_returns_what_is_stored_in_order(self, backend: IndexBackend) -> None:
        first = make_row(_key(1), metrics=json.dumps({"sharpe": 1.0}))
        backend.insert(first)
        late = make_row(_key(1), metrics=json.dumps({"sharpe": 2.0}), created=5.0)
        new = make_row(_key(2), kind="slice", window=json.dumps([0, 10, "a", "b"]),
                       parent=_key(1), artifact=None, checksum=None, n_bytes=0)
        assert backend.insert_many([new, late]) == [new, first]
        assert backend.insert_many([]) == []
        assert [r.key for r in backend.rows()] == [_key(1), _key(2)]

    def test_get_many_returns_the_stored_rows_by_key(self, backend: IndexBackend) -> None:
        rows = [make_row(_key(i)) for i in range(1, 4)]
        backend.insert_many(rows)
        assert backend.get_many([_key(3), _key(9), _key(1), _key(1)]) == {
            _key(3): rows[2], _key(1): rows[0]}
        assert backend.get_many([]) == {}
        assert backend.get_many([_key(9)]) == {}
        many = [make_row(_key(i)) for i in range(10, 1210)]  # beyond any one query's limit
        backend.insert_many(many)
        assert backend.get_many([r.key for r in many] + [_key(5)]) == {r.key: r for r in many}

    def test_touch_only_raises_last_used(self, backend: IndexBackend) -> None:
        row = make_row(_key(1), last_used=100.0)
        backend.insert(row)
        backend.touch({_key(1): 50.0, _key(9): 500.0})  # lower time, unknown key: no effect
        assert backend.get(_key(1)) == row
        backend.touch({_key(1): 200.0})
        assert backend.get(_key(1)) == dataclasses.replace(row, last_used=200.0)
        assert backend.get(_key(9)) is None

    def test_delete_returns_the_rows_it_deleted(self, backend: IndexBackend) -> None:
        rows = [make_row(_key(i)) for i in range(3)]
        for row in rows:
            backend.insert(row)
        deleted = backend.delete([_key(0), _key(2), _key(7)])
        assert sorted(r.key for r in deleted) == [_key(0), _key(2)]
        assert backend.delete([_key(0)]) == []
        assert [r.key for r in backend.rows()] == [_key(1)]

    def test_rows_filter_by_strategy_and_kind_oldest_first(self, backend: IndexBackend) -> None:
        backend.insert(make_row(_key(1), strategy="a", created=3.0))
        backend.insert(make_row(_key(2), strategy="b", created=1.0))
        backend.insert(make_row(_key(3), strategy="a", kind="slice", created=2.0))
        assert [r.key for r in backend.rows()] == [_key(2), _key(3), _key(1)]
        assert [r.key for r in backend.rows(strategy="a")] == [_key(3), _key(1)]
        assert [r.key for r in backend.rows(kind="full")] == [_key(2), _key(1)]
        assert [r.key for r in backend.rows(strategy="a", kind="slice")] == [_key(3)]
        assert backend.rows(strategy="nobody") == []

    def test_returned_rows_are_frozen_values(self, backend: IndexBackend) -> None:
        backend.insert(make_row(_key(1)))
        row = backend.get(_key(1))
        assert row is not None
        with pytest.raises(dataclasses.FrozenInstanceError):
            row.metrics = "{}"  # type: ignore[misc]

    def test_another_handle_sees_committed_rows(
            self, backend: IndexBackend, make_backend: Callable[[], IndexBackend]) -> None:
        backend.insert(make_row(_key(1)))
        other = make_backend()
        assert other.get(_key(1)) == make_row(_key(1))
        other.insert(make_row(_key(2)))
        assert backend.get(_key(2)) == make_row(_key(2))

    def test_one_instance_is_safe_from_many_threads(self, backend: IndexBackend) -> None:
        errors: list[BaseException] = []
        barrier = threading.Barrier(6)

        def work(t: int) -> None:
            try:
                barrier.wait()
                for i in range(40):
                    shared = backend.insert(make_row(_key(1000 + i), created=float(t)))
                    assert shared.key == _key(1000 + i)
                    own = make_row(_key(t * 100 + i))
                    assert backend.insert(own) == own
                    assert backend.get(own.key) == own
                    backend.touch({own.key: 2e9 + i})
                    if i % 10 == 9:
                        backend.rows(strategy="sma_crossover")
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        keys = {r.key for r in backend.rows()}
        assert keys == {_key(1000 + i) for i in range(40)} | {
            _key(t * 100 + i) for t in range(6) for i in range(40)}

    def test_close_then_reuse(self, backend: IndexBackend) -> None:
        backend.insert(make_row(_key(1)))
        backend.close()
        assert backend.get(_key(1)) == make_row(_key(1))
        assert isinstance(backend.describe(), str)
        assert backend.describe()

    def test_shareable_is_a_bool(self, backend: IndexBackend) -> None:
        assert isinstance(backend.shareable, bool)

    def test_shareable_backends_pickle_as_their_location(self, backend: IndexBackend) -> None:
        if not backend.shareable:
            pytest.skip("a process-local backend is not shared with workers")
        backend.insert(make_row(_key(1)))
        clone = copy.deepcopy(backend)  # through the pickle protocol (__reduce__)
        assert clone.shareable
        assert clone.get(_key(1)) == make_row(_key(1))
        clone.insert(make_row(_key(2)))
        assert backend.get(_key(2)) == make_row(_key(2))

    def test_process_local_backends_refuse_to_pickle(self, backend: IndexBackend) -> None:
        if backend.shareable:
            pytest.skip("a shareable backend pickles as its location")
        # a copy in a worker would silently be another, empty store
        with pytest.raises(FoldwiseError):
            copy.deepcopy(backend)  # through the pickle protocol (__reduce__)

    @pytest.mark.slow
    def test_another_process_writes_into_a_shareable_backend(
            self, backend: IndexBackend) -> None:
        if not backend.shareable:
            pytest.skip("a process-local backend is not shared with other processes")
        backend.insert(make_row(_key(1)))
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, as loky's
        with context.Pool(1) as pool:
            seen = pool.apply(_read_and_insert, (backend, _key(1), _key(2)))
        assert seen == make_row(_key(1))
        assert backend.get(_key(2)) == make_row(_key(2))

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_forked_child_uses_the_inherited_instance(self, backend: IndexBackend) -> None:
        if not backend.shareable:
            pytest.skip("a process-local backend is not shared with child processes")
        backend.insert(make_row(_key(1)))  # the parent holds a connection now
        pid = os.fork()
        if pid == 0:  # the child: must open its own connection, not reuse the parent's
            code = 1
            try:
                if backend.get(_key(1)) == make_row(_key(1)):
                    backend.insert(make_row(_key(2)))
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert backend.get(_key(2)) == make_row(_key(2))
        backend.insert(make_row(_key(3)))  # the parent's connection still works
        assert backend.get(_key(3)) == make_row(_key(3))

    # --- run locks (backends that keep them) ---------------------------------------------

    @staticmethod
    def _lock_or_skip(backend: IndexBackend, digest: str) -> Any:
        lock = backend.run_lock(digest)
        if lock is None:
            pytest.skip("this backend leaves run locks to the cache's lock files")
        return lock

    @staticmethod
    def _taken_in_thread(backend: IndexBackend, digest: str) -> tuple[threading.Event,
                                                                        threading.Thread]:
        """A thread that takes the lock of ``digest`` through ``backend``, sets the event,
        and releases it."""
        taken = threading.Event()

        def take() -> None:
            lock = backend.run_lock(digest)
            assert lock is not None
            taken.set()
            lock.release()

        thread = threading.Thread(target=take)
        thread.start()
        return taken, thread

    def test_a_run_lock_excludes_other_handles_and_threads(
            self, backend: IndexBackend, make_backend: Callable[[], IndexBackend]) -> None:
        lock = self._lock_or_skip(backend, _key(1))
        waiters = [self._taken_in_thread(make_backend(), _key(1)),  # another handle
                   self._taken_in_thread(backend, _key(1))]  # another thread, same handle
        other_taken, other = self._taken_in_thread(make_backend(), _key(2))
        assert other_taken.wait(10), "the lock of another key must not wait"
        time.sleep(0.3)
        assert not any(taken.is_set() for taken, _ in waiters), "taken while held"
        lock.release()
        for taken, thread in waiters:
            assert taken.wait(10), "not taken after the release"
            thread.join()
        other.join()
        again = backend.run_lock(_key(1))  # free again once every holder released it
        assert again is not None
        again.release()

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_a_run_lock_dies_with_its_holder(self, backend: IndexBackend) -> None:
        self._lock_or_skip(backend, _key(3)).release()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child takes the lock, says so, and dies without releasing it
            code = 1
            try:
                backend.run_lock(_key(3))
                os.write(write, b"x")
                time.sleep(0.5)
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        assert os.read(read, 1) == b"x"
        os.close(read)
        started = time.monotonic()
        lock = backend.run_lock(_key(3))  # waits while the child lives, not after
        assert lock is not None
        assert time.monotonic() - started < 30
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        lock.release()
