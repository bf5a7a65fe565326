"""Shared fixtures and hypothesis settings."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from foldwise import MarketData
from tests._object_store import s3_server  # noqa: F401  (a session's S3 server, moto)
from tests._postgres import postgres_server  # noqa: F401  (a session's PostgreSQL server)

# Shared CI machines are slow and noisy: no per-example deadline, and a fixed number of
# examples so a run's cost is predictable. HYPOTHESIS_PROFILE=thorough digs deeper.
settings.register_profile(
    "default", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=600)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def make_panel(n_dates: int = 300, n_assets: int = 4, seed: int = 0, *,
               start: str = "2020-01-01", fields: tuple[str, ...] = ("close",)) -> MarketData:
    """A random-walk price panel on business days (positive prices, no gaps)."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range(start, periods=n_dates)
    assets = [f"A{i}" for i in range(n_assets)]
    arrays = {}
    for k, name in enumerate(fields):
        steps = rng.normal(0.0003, 0.015, size=(n_dates, n_assets))
        arrays[name] = 50.0 * (1 + k) * np.exp(np.cumsum(steps, axis=0))
    return MarketData(arrays, index, assets)


@pytest.fixture
def panel() -> MarketData:
    return make_panel()


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    """A private FOLDWISE_DIR so no test writes into the working directory."""
    root = tmp_path / "foldwise-home"
    monkeypatch.setenv("FOLDWISE_DIR", str(root))
    return root
