"""Typed resources, configured from the environment (see .env.example)."""


import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from ingestion import config


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. DuckDB allows one writing process, so every asset that opens it for
    writing runs in the ``warehouse`` pool (limit 1) and closes its connection when done."""

    path: str

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).resolve()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.resolved_path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.resolved_path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone root: append-only JSONL files under stripe_events/ and tracking/."""

    path: str

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).resolve()


class TikTokResource(dg.ConfigurableResource):
    """TikTok Events API credentials. Without an access token and pixel code, deliveries are dry runs."""

    access_token: str | None = None
    pixel_code: str | None = None
    api_base_url: str = "https://business-api.tiktok.com"
    test_event_code: str | None = None


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def default_resources() -> dict:
    """Resources from the environment. Paths are resolved against the working directory now, so the dbt
    subprocess and every asset see the same files whatever directory they run in."""
    warehouse = str(config.warehouse_path())
    os.environ["WAREHOUSE_PATH"] = warehouse  # read by dbt_project/profiles.yml
    return {
        "warehouse": WarehouseResource(path=warehouse),
        "landing_zone": LandingZoneResource(path=str(config.landing_dir())),
        "tiktok": TikTokResource(
            access_token=dg.EnvVar("TIKTOK_ACCESS_TOKEN") if _env("TIKTOK_ACCESS_TOKEN") else None,
            pixel_code=_env("TIKTOK_PIXEL_CODE"),
            api_base_url=_env("TIKTOK_API_BASE_URL") or "https://business-api.tiktok.com",
            test_event_code=_env("TIKTOK_TEST_EVENT_CODE"),
        ),
    }
