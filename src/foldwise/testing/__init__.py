"""Test suites that extension points of foldwise must pass, importable by other packages.

* :mod:`foldwise.testing.cache_backends` — the contract of cache index backends.

These modules need pytest; nothing else in foldwise imports them.
"""
