"""The README's "## Cluster" example runs as written, against a real Dask scheduler (a
LocalCluster of two worker processes on loopback), a real PostgreSQL server and a shared
directory: only its three addresses are replaced."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ._cluster_support import local_cluster
from ._postgres import PostgresServer

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def _cluster_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Cluster\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def _replace(code: str, name: str, value: str) -> str:
    pattern = re.compile(rf'^{name} = "[^"]*"', re.M)
    assert len(pattern.findall(code)) == 1, f"the example no longer sets {name}"
    return pattern.sub(f"{name} = {value!r}", code)


def test_the_cluster_example_of_the_readme_runs(postgres_server: PostgresServer, tmp_path):
    database = postgres_server.create_database("readme")
    code = _cluster_example()
    with local_cluster(2) as client:
        code = _replace(code, "SCHEDULER", client.scheduler.address)
        code = _replace(code, "DATABASE", database)
        code = _replace(code, "SHARED", str(tmp_path / "shared"))
        script = tmp_path / "cluster_example.py"
        script.write_text(code)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 6  # folds of 2 years train / 1 year test on GOOG
    assert all(row[-1] == "6" for row in rows)  # trials_complete
    # the studies are in PostgreSQL and the runs in the shared directory
    assert postgres_server.sql("readme", "SELECT count(*) FROM studies")[0][0] == 7
    assert any((tmp_path / "shared" / "cache").rglob("*"))
