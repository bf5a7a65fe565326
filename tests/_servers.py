"""What a test does when the server it needs cannot start."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(require_env: str, message: str) -> NoReturn:
    """Skip the test that needs a server, saying why; fail it instead where
    ``$require_env`` is 1 (``.ci/run`` sets it: there every server must start)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {message}")
    pytest.skip(message)
