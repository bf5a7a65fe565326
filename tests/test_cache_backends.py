"""Every index backend foldwise ships passes the backend contract suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from foldwise.cache import IndexBackend
from foldwise.testing.cache_backends import BACKENDS, IndexBackendContract


class TestShippedBackends(IndexBackendContract):
    @pytest.fixture(params=sorted(BACKENDS))
    def make_backend(self, request: pytest.FixtureRequest,
                     tmp_path: Path) -> Callable[[], IndexBackend]:
        return BACKENDS[request.param](tmp_path)
