"""Every index backend foldwise ships passes the backend contract suite: SQLite and memory
here, and the PostgreSQL index against a real server (each test in a schema of its own)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from foldwise.cache import IndexBackend, PostgresIndex
from foldwise.testing.cache_backends import BACKENDS, IndexBackendContract
from tests._postgres import PostgresServer


class TestShippedBackends(IndexBackendContract):
    @pytest.fixture(params=sorted(BACKENDS))
    def make_backend(self, request: pytest.FixtureRequest,
                     tmp_path: Path) -> Callable[[], IndexBackend]:
        return BACKENDS[request.param](tmp_path)


_schemas = itertools.count()


@pytest.fixture(scope="module")
def contract_database(postgres_server: PostgresServer) -> str:
    postgres_server.create_database("contract")
    return "contract"


@pytest.mark.cluster
class TestPostgresIndex(IndexBackendContract):
    @pytest.fixture
    def make_backend(self, postgres_server: PostgresServer,
                     contract_database: str) -> Callable[[], IndexBackend]:
        schema = f"test_{next(_schemas)}"
        postgres_server.sql(contract_database, f"CREATE SCHEMA {schema}")
        url = postgres_server.url(contract_database, options=f"?options=-csearch_path%3D{schema}")
        return lambda: PostgresIndex(url)
