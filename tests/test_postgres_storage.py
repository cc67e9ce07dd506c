"""The production instance (deploy/dagster.yaml) on a real PostgreSQL server started by the test: a
materialisation runs on it, and the run and its events are read back from PostgreSQL."""

import json
import shutil
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from ingestion.landing import write_jsonl_atomic
from orchestration.defs.ingestion import raw_tracking_events
from orchestration.resources import LandingZoneResource, WarehouseResource
from tests.postgres_server import server_with_database

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def postgres():
    with server_with_database("dagster", "the PostgreSQL storage test") as server:
        yield server


def test_a_materialisation_on_the_postgres_instance_is_stored_in_postgres(postgres, tmp_path, monkeypatch):
    host, port, user = postgres
    for key, value in {
        "DAGSTER_PG_HOST": host,
        "DAGSTER_PG_PORT": str(port),
        "DAGSTER_PG_USER": user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": "dagster",
    }.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    landing = tmp_path / "landing"
    write_jsonl_atomic(
        landing / "tracking" / "a.jsonl",
        [
            {"messageId": f"m{i}", "type": "page", "timestamp": "2026-11-20T10:00:00Z", "anonymousId": f"b{i}"}
            for i in range(25)
        ],
    )

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = dg.materialize(
            [raw_tracking_events],
            instance=instance,
            resources={
                "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
                "landing_zone": LandingZoneResource(path=str(landing)),
            },
        )
        assert result.success
        run_id = result.run_id
        assert instance.get_run_by_id(run_id).is_success

    with psycopg2.connect(host=host, port=port, user=user, dbname="dagster") as con, con.cursor() as cur:
        cur.execute("select status, pipeline_name from runs where run_id = %s", [run_id])
        assert cur.fetchall() == [("SUCCESS", "__ephemeral_asset_job__")]
        cur.execute("select dagster_event_type, asset_key from event_logs where run_id = %s", [run_id])
        events = cur.fetchall()
    kinds = {kind for kind, _ in events}
    # run events keep their historical names in storage
    assert {"PIPELINE_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION", "PIPELINE_SUCCESS"} <= kinds, kinds
    materialized = [json.loads(key) for kind, key in events if kind == "ASSET_MATERIALIZATION"]
    assert materialized == [["raw", "tracking_events"]]
