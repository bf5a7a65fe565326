"""The command line against the server backends: ``foldwise studies``, ``show``, ``report``
and ``cache stats | verify`` read a study in PostgreSQL (``--storage URL``) and a cache whose
index is on the same server (``--index URL``, artifacts in ``--dir``), create nothing when
they only read, and never print the password of a URL."""

from __future__ import annotations

import pytest

import foldwise
from foldwise.cache import PostgresIndex
from foldwise.cli import main
from foldwise.examples import sma_crossover

from ._postgres import PostgresServer

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PASSWORD = "s3cret-pw"  # the test server trusts loopback: the password is never checked


def _with_password(url: str) -> str:
    return url.replace("foldwise@", f"foldwise:{PASSWORD}@")


@pytest.fixture(scope="module")
def stored(postgres_server: PostgresServer, tmp_path_factory):
    """A walk-forward study in PostgreSQL, its cache index on the same server."""
    url = _with_password(postgres_server.create_database("cli"))
    root = tmp_path_factory.mktemp("cli") / "fw"
    cache = foldwise.BacktestCache(root, backend=PostgresIndex(url), keep_arrays="always")
    result = foldwise.optimize(
        sma_crossover, foldwise.datasets.load_goog(),
        {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(40, 120)},
        foldwise.WalkForward(train="3Y", test="2Y"), n_trials=4, study="cli", storage=url,
        cache=cache, seed=0, show_progress=False)
    cache.close()
    return url, root, result


def _tables(server: PostgresServer, database: str) -> list[str]:
    return sorted(name for (name,) in server.sql(
        database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))


def test_studies_show_and_report_read_the_study_from_postgresql(stored, capsys, tmp_path):
    url, root, result = stored
    assert main(["studies", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "cli" in out and "complete" in out and "4/4" in out
    assert main(["show", "cli", "--storage", url, "--dir", str(root), "--index", url]) == 0
    out = capsys.readouterr().out
    assert result.text_report() in out
    assert "re-created" not in out  # every run came from the shared index
    target = tmp_path / "report.html"
    assert main(["report", "cli", "--storage", url, "--dir", str(root), "--index", url,
                 "-o", str(target)]) == 0
    assert target.stat().st_size > 100_000 and "re-created" not in capsys.readouterr().out
    assert PASSWORD not in target.read_text()


def test_cache_stats_and_verify_read_the_index_on_the_server(stored, capsys):
    url, root, _ = stored
    index = PostgresIndex(url)
    rows = index.rows()
    index.close()
    assert main(["cache", "stats", "--dir", str(root), "--index", url]) == 0
    out = capsys.readouterr().out
    assert f"{len(rows)} (" in out and "sma_crossover" in out
    assert main(["cache", "verify", "--dir", str(root), "--index", url]) == 0
    assert "all intact" in capsys.readouterr().out
    # the same directory with its SQLite index (never written here) knows no run
    assert main(["cache", "stats", "--dir", str(root)]) == 0
    assert f"{len(rows)} (" not in capsys.readouterr().out


def test_reading_an_empty_database_creates_nothing_and_says_so(
        postgres_server: PostgresServer, capsys, tmp_path):
    url = _with_password(postgres_server.create_database("cli_empty"))
    assert main(["studies", "--storage", url]) == 1
    err = capsys.readouterr().err
    assert "no study storage" in err and "no Optuna tables" in err
    root = tmp_path / "fw"
    (root / "cache").mkdir(parents=True)
    assert main(["cache", "stats", "--dir", str(root), "--index", url]) == 0
    assert "0 (" in capsys.readouterr().out
    assert main(["show", "nothing", "--storage", url]) == 1
    assert _tables(postgres_server, "cli_empty") == []


def test_no_password_in_what_is_printed(stored, capsys):
    url, root, _ = stored
    assert main(["studies", "--storage", url]) == 0
    assert main(["cache", "stats", "--dir", str(root), "--index", url]) == 0
    assert main(["show", "cli", "--storage", url]) == 0
    printed = capsys.readouterr()
    assert PASSWORD not in printed.out + printed.err
    assert "***" in printed.out  # the storage's URL, named with its password hidden


def test_delete_removes_a_study_from_postgresql(postgres_server: PostgresServer, capsys,
                                                tmp_path):
    url = postgres_server.create_database("cli_delete")
    foldwise.optimize(sma_crossover, foldwise.datasets.load_goog(),
                      {"fast": foldwise.Int(5, 30), "slow": foldwise.Int(40, 120)},
                      foldwise.WalkForward(train=1500, test=500), n_trials=2, study="gone",
                      storage=url, cache=tmp_path / "fw", seed=0, show_progress=False)
    assert foldwise.list_studies(url) == ["gone"]
    assert main(["delete", "gone", "--storage", url, "--dir", str(tmp_path / "fw")]) == 1
    assert "--yes" in capsys.readouterr().err  # asks first
    assert main(["delete", "gone", "--storage", url, "--dir", str(tmp_path / "fw"),
                 "--yes"]) == 0
    assert foldwise.list_studies(url) == []
