"""Shared fixtures: small simulated worlds on disk, real DuckDB files, Dagster runs on a temporary instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from simulator.cli import write_world
from simulator.world import WorldConfig

DBT = Path(sys.executable).parent / "dbt"
DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


# The pipeline keeps a dbt target folder per warehouse in dbt_project/target (orchestration/defs/dbt.py,
# build_target_path), for good: the suite's warehouses are temporary, and each `make test` would leave dozens of
# folders behind. Those of the session's workspaces are removed when it ends. (Recording every warehouse by wrapping
# build_target_path from the session's start imported the code location before the first test, and five Dagster tests
# then failed on a deleted instance's storage; not understood, so nothing is imported before the end.)
WAREHOUSE_IDENTITIES: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def remove_the_sessions_dbt_targets():
    yield
    import shutil

    from orchestration.defs.dbt import build_target_path

    project = DBT_PROJECT.resolve()
    for identity in WAREHOUSE_IDENTITIES:
        if not identity.startswith(str(project.parent)):  # never a warehouse of the checkout itself
            shutil.rmtree(project / build_target_path(identity), ignore_errors=True)


def load_defs(resources: dict) -> dg.Definitions:
    """``build_defs`` inside an instance of its own, its repository resolved there. Resolving the definitions reads
    Dagster's current definitions-state storage, a context variable an instance sets while it is entered (it is
    resolved lazily, so ``resolve_asset_graph`` here, not at a test's first use). A test that builds a context
    without ``with`` leaves its instance's storage current after its temporary folder is gone; a later test
    resolving outside an instance then failed with sqlite's "unable to open database file"."""
    from orchestration.definitions import build_defs

    with dg.instance_for_test():
        defs = build_defs(resources)
        defs.resolve_asset_graph()
        return defs


@dataclass
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        WAREHOUSE_IDENTITIES.add(str(self.warehouse.resolve()))

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def truth(self) -> Path:
        return self.root / "ground_truth" / "purchases.jsonl"

    def add_world(self, visitors: int, seed: int, end_date: date | None = None) -> dict:
        cfg = WorldConfig(visitors=visitors, seed=seed)
        if end_date:
            cfg.end_date = end_date
        return write_world(cfg, self.landing, self.truth)

    def resources(self) -> dict:
        from orchestration.resources import (
            LandingZoneResource,
            StripeResource,
            TikTokAdsResource,
            TikTokResource,
            WarehouseResource,
        )

        return {
            "warehouse": WarehouseResource(path=str(self.warehouse)),
            "landing_zone": LandingZoneResource(path=str(self.landing)),
            "tiktok": TikTokResource(),
            "stripe": StripeResource(),
            "tiktok_ads": TikTokAdsResource(),
        }

    def defs(self) -> dg.Definitions:
        return load_defs(self.resources())

    def run(self) -> dg.ExecuteInProcessResult:
        from orchestration.run import run_pipeline

        with dg.instance_for_test() as instance:
            result = run_pipeline(instance=instance, defs=self.defs(), log_level="WARNING")
        return result

    def dbt(self, *args: str) -> str:
        """Load the landing zone, then run a dbt command on the warehouse; returns dbt's output."""
        from ingestion.loader import load_all

        with duckdb.connect(str(self.warehouse)) as con:
            load_all(con, self.landing)
        env = {**os.environ, "WAREHOUSE_PATH": str(self.warehouse)}
        out = subprocess.run(
            [
                str(DBT),
                *args,
                "--project-dir",
                str(DBT_PROJECT),
                "--profiles-dir",
                str(DBT_PROJECT),
                "--target-path",
                str(self.root / "dbt_target"),
                "--log-path",
                str(self.root / "dbt_logs"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
        return out.stdout

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list | None = None):
        return self.query(sql, params)[0][0]

    def truth_rows(self) -> list[dict]:
        return [json.loads(line) for line in self.truth.read_text().splitlines() if line.strip()]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture(scope="session")
def built_world(tmp_path_factory) -> Workspace:
    """One small world run through the whole pipeline once, shared by the read-only tests."""
    ws = Workspace(tmp_path_factory.mktemp("built_world"))
    # ending today, so the last week's purchases are young enough for TikTok and the rest expire
    ws.add_world(visitors=1500, seed=11, end_date=date.today())
    result = ws.run()
    assert result.success, "the pipeline failed on the shared small world"
    return ws
