"""Fingerprints of code defined in a notebook cell or an interactive session.

IPython compiles each cell under a file name that does not exist and keeps the cell's
text in linecache; a class it defines lives in ``__main__``, which has no file, so
``inspect.getsource`` cannot find the class. Its fingerprint is read through its methods'
code instead (a ``CustomFactor`` written in a notebook is the common case).
"""

from __future__ import annotations

import linecache

import pytest

from foldwise.errors import FingerprintError
from foldwise.pipeline import FactorStrategy

_CELL = '''
import numpy as np
from foldwise.pipeline import CustomFactor, EquityPricing

class Reversion(CustomFactor):
    inputs = [EquityPricing.close]
    window_length = 60

    def compute(self, today, assets, out, prices):
        out[:] = -prices[-1] / np.mean(prices, axis=0)

def make_pipeline(window=60):
    return Reversion(window_length=window)
'''


def _run_cell(source: str, number: int, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run ``source`` the way IPython runs a cell: compiled under a file name that does not
    exist, its text kept in linecache (mtime None, so never evicted), in ``__main__``."""
    filename = f"/nonexistent/ipykernel_test/{number}.py"
    lines = source.splitlines(keepends=True)
    monkeypatch.setitem(linecache.cache, filename, (len(source), None, lines, filename))
    namespace = {"__name__": "__main__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def test_a_custom_factor_defined_in_a_notebook_cell_is_fingerprinted(monkeypatch):
    # inspect.getsource cannot find a class of __main__ (no file); its methods' code can
    first = FactorStrategy(_run_cell(_CELL, 1, monkeypatch)["make_pipeline"]).fingerprint
    again = FactorStrategy(_run_cell(_CELL, 2, monkeypatch)["make_pipeline"]).fingerprint
    assert again == first
    for edit in (("np.mean", "np.median"),                           # a method's code
                 ("window_length = 60", "window_length = 20"),      # the class body
                 ("inputs = [EquityPricing.close]", "inputs = [EquityPricing.open]")):
        edited = FactorStrategy(
            _run_cell(_CELL.replace(*edit), 3, monkeypatch)["make_pipeline"]).fingerprint
        assert edited != first, edit


def test_a_class_whose_cell_text_is_gone_still_needs_a_version():
    namespace: dict = {"__name__": "__main__"}
    exec(compile(_CELL, "<never kept>", "exec"), namespace)
    with pytest.raises(FingerprintError, match="cannot read the source.*pass version="):
        FactorStrategy(namespace["make_pipeline"]).fingerprint  # noqa: B018
