"""The dbt project on its own: `dbt build` (models and their data tests) against a DuckDB file."""

import os
import subprocess

import pytest

from tests.conftest import DBT, DBT_PROJECT

pytestmark = pytest.mark.slow


def test_dbt_build_passes_all_its_tests_on_a_simulated_world(workspace):
    workspace.add_world(visitors=300, seed=31)
    out = workspace.dbt("build")
    assert "ERROR=0" in out and "PASS=" in out
    tests = int(out.split("data tests")[0].rsplit(",", 1)[-1].strip().split()[0])
    assert tests >= 30


def test_tracking_staging_is_incremental_and_rebuilt_in_full_when_the_project_changes(workspace):
    """New raw events are appended to stg_tracking__events (the rows already staged are left alone), the result
    equals a full rebuild, and a changed dbt project makes the next run rebuild everything."""
    import shutil

    import duckdb

    workspace.add_world(visitors=200, seed=41)
    assert workspace.run().success
    staged = workspace.scalar("select count(*) from staging.stg_tracking__events")
    assert staged == workspace.scalar("select count(*) from raw.tracking_events")
    # a mark that only a rebuild would wash out
    marked = workspace.scalar("select min(message_id) from staging.stg_tracking__events")
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("update staging.stg_tracking__events set page_title = 'marked' where message_id = ?", [marked])

    workspace.add_world(visitors=60, seed=42)
    assert workspace.run().success
    raw = workspace.scalar("select count(*) from raw.tracking_events")
    assert workspace.scalar("select count(*) from staging.stg_tracking__events") == raw > staged
    assert workspace.scalar("select page_title from staging.stg_tracking__events where message_id = ?",
                            [marked]) == "marked", "an incremental run leaves staged rows alone"
    # appending gave what a rebuild gives
    copy = workspace.root / "rebuilt.duckdb"
    shutil.copy(workspace.warehouse, copy)
    out = subprocess.run([str(DBT), "run", "--full-refresh", "-s", "stg_tracking__events", "--project-dir",
                          str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT), "--target-path",
                          str(workspace.root / "dbt_target_copy"), "--log-path", str(workspace.root / "dbt_logs")],
                         env={**os.environ, "WAREHOUSE_PATH": str(copy)}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
    with duckdb.connect(str(copy)) as con:
        con.execute(f"attach '{workspace.warehouse}' as incremental (read_only)")
        for a, b in (("staging", "incremental.staging"), ("incremental.staging", "staging")):
            extra = con.execute(f"""
                select count(*) from (
                    select * exclude (loaded_at) from {a}.stg_tracking__events where message_id <> '{marked}'
                    except all
                    select * exclude (loaded_at) from {b}.stg_tracking__events where message_id <> '{marked}')
            """).fetchall()[0][0]
            assert extra == 0, f"{extra} rows differ between the incremental and the rebuilt table"

    # the project the models were built from changed (here: the record of it): everything is rebuilt
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("update monitoring.dbt_build_state set project = 'an older project'")
    workspace.add_world(visitors=20, seed=43)
    assert workspace.run().success
    assert workspace.scalar("select page_title from staging.stg_tracking__events where message_id = ?",
                            [marked]) != "marked"
    assert workspace.scalar("select count(*) from staging.stg_tracking__events") == \
        workspace.scalar("select count(*) from raw.tracking_events")
