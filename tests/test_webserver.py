"""`make dev`'s webserver, started for real over the embedded defaults, read through its GraphQL API."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import ROOT, free_port

QUERY = """
{
  assetNodes { assetKey { path } groupName dependencyKeys { path } jobNames kinds owners { __typename } }
  assetOrError(assetKey: {path: ["reverse_etl", "tiktok_deliveries"]}) {
    ... on Asset { definition { description automationCondition { label } } }
  }
}
"""


@pytest.mark.slow
def test_the_webserver_serves_the_asset_graph_over_graphql(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "LANDING_DIR": str(tmp_path / "landing"),
        "WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
    }
    (tmp_path / "home").mkdir()
    webserver = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen(
        [str(webserver), "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "the webserver did not answer within 180 s"
            time.sleep(0.5)
        data = None
        while data is None or not data["assetNodes"]:  # the code location may still be loading
            r = httpx.post(f"{url}/graphql", json={"query": QUERY}, timeout=60)
            assert r.status_code == 200, r.text
            assert "errors" not in r.json(), r.json()["errors"]
            data = r.json()["data"]
            assert time.time() < deadline, "no assets loaded"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    groups = {n["groupName"] for n in nodes.values()}
    assert {"ingestion", "staging", "identity", "attribution", "activation"} <= groups
    deps = lambda key: {"/".join(d["path"]) for d in nodes[key]["dependencyKeys"]}  # noqa: E731
    assert "raw/tracking_events" in deps("staging/stg_tracking__events")
    assert "landing/stripe_events_pull" in deps("raw/stripe_events")
    assert "marts/tiktok_conversions" in deps("reverse_etl/tiktok_deliveries")
    assert nodes["intermediate/int_identity_components"]["groupName"] == "identity"
    assert nodes["reverse_etl/tiktok_deliveries"]["groupName"] == "activation"
    assert (
        "ingest" in nodes["raw/tracking_events"]["jobNames"] and "pipeline" in nodes["raw/tracking_events"]["jobNames"]
    )
    assert "dbt" in nodes["marts/attributed_purchases"]["kinds"]
    definition = data["assetOrError"]["definition"]
    assert "TikTok" in definition["description"] and definition["automationCondition"]["label"] == "eager"
