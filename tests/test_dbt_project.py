"""The dbt project on its own: `dbt build` (models and their data tests) against a DuckDB file."""

import pytest

pytestmark = pytest.mark.slow


def test_dbt_build_passes_all_its_tests_on_a_simulated_world(workspace):
    workspace.add_world(visitors=300, seed=31)
    out = workspace.dbt("build")
    assert "ERROR=0" in out and "PASS=" in out
    tests = int(out.split("data tests")[0].rsplit(",", 1)[-1].strip().split()[0])
    assert tests >= 30
