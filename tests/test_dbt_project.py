"""The dbt project on its own: `dbt build` (models and their data tests) against a DuckDB file."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ingestion.loader import load_all

pytestmark = pytest.mark.slow
DBT = Path(sys.executable).parent / "dbt"
PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


def test_dbt_build_passes_all_its_tests_on_a_simulated_world(workspace, tmp_path):
    workspace.add_world(visitors=300, seed=31)
    with duckdb.connect(str(workspace.warehouse)) as con:
        load_all(con, workspace.landing)
    env = {**os.environ, "WAREHOUSE_PATH": str(workspace.warehouse)}
    out = subprocess.run([str(DBT), "build", "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
                          "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "ERROR=0" in out.stdout and "PASS=" in out.stdout
    tests = int(out.stdout.split("data tests")[0].rsplit(",", 1)[-1].strip().split()[0])
    assert tests >= 30
