"""Two runs started at once (as a schedule and a person clicking "Materialize all" might) both succeed, one after
the other in the warehouse pool, and leave the warehouse as one run would."""

import os
import subprocess
import sys

import pytest

from tests.services import ROOT

pytestmark = pytest.mark.slow


def test_two_runs_started_together_never_fail_or_corrupt_the_warehouse(workspace):
    workspace.add_world(visitors=300, seed=23)
    env = {
        **os.environ,
        "LANDING_DIR": str(workspace.landing),
        "WAREHOUSE_PATH": str(workspace.warehouse),
        "DAGSTER_HOME": str(workspace.root / "dagster_home"),
        "DAGSTER_LOG_LEVEL": "WARNING",
    }
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestration.run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in runs]
    for p, out in zip(runs, outputs, strict=False):
        assert p.returncode == 0, out[-4000:]
    truth = {t["purchase_id"] for t in workspace.truth_rows()}
    assert workspace.scalar("select count(*) from raw.stripe_events") == workspace.scalar(
        "select count(distinct event_id) from raw.stripe_events"
    )
    assert workspace.scalar("select count(*) from raw.loaded_files") == workspace.scalar(
        "select count(distinct file) from raw.loaded_files"
    )
    found = {r[0] for r in workspace.query("select purchase_id from marts.attributed_purchases")}
    assert found == truth
    assert workspace.scalar("select count(*) from reverse_etl.tiktok_deliveries") == workspace.scalar(
        "select count(*) from marts.tiktok_conversions"
    )
