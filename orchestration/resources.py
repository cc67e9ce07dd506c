"""Typed resources, configured from the environment (see .env.example)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from ingestion import config
from ingestion.settings import Setting, build, settings_fields, value_of
from ingestion.stripe_pull import PullSettings
from reverse_etl.settings import DeliverySettings


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. DuckDB allows one writing process, so every asset that opens it for
    writing runs in the ``warehouse`` pool (limit 1) and closes its connection when done."""

    path: str

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).resolve()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.resolved_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        con = duckdb.connect(
            str(self.resolved_path),
            read_only=read_only,
            config={"memory_limit": os.environ.get("DUCKDB_MEMORY_LIMIT") or "1GB"},
        )
        if not read_only and self.resolved_path.stat().st_mode & 0o077:
            self.resolved_path.chmod(0o600)  # a warehouse created before files were owner-only
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


TIKTOK_SETTINGS = settings_fields(DeliverySettings)


def _config_name(setting: Setting) -> str:
    """A TikTok setting's name in the resource's config: its environment variable without TIKTOK_, lowercased."""
    return setting.env.removeprefix("TIKTOK_").lower()


class _TikTokResourceBase(dg.ConfigurableResource):
    def settings(self) -> DeliverySettings:
        return build(DeliverySettings, {s.env: getattr(self, _config_name(s)) for s in TIKTOK_SETTINGS})

    @classmethod
    def from_env(cls) -> "TikTokResource":
        settings = DeliverySettings.from_env()  # parsed and checked as the delivery reads them
        config = {_config_name(s): value_of(settings, s) for s in TIKTOK_SETTINGS}
        # the token stays an EnvVar so the UI and logs never show its value
        config["access_token"] = dg.EnvVar("TIKTOK_ACCESS_TOKEN") if settings.access_token else None
        return cls(**config)


# TikTok Events API delivery settings, one config field per field of DeliverySettings (same types and defaults, so
# the UI shows what a run without configuration would do). Without an access token and pixel code, deliveries are
# dry runs: payloads are built, validated and recorded in the ledger, and nothing is sent.
TikTokResource = type(
    "TikTokResource",
    (_TikTokResourceBase,),
    {
        "__module__": __name__,
        "__doc__": "TikTok Events API delivery settings (reverse_etl.settings.DeliverySettings); without an access "
        "token and pixel code, deliveries are dry runs.",
        "__annotations__": {_config_name(s): s.type for s in TIKTOK_SETTINGS},
        **{_config_name(s): s.default for s in TIKTOK_SETTINGS},
    },
)


class StripeResource(dg.ConfigurableResource):
    """Stripe Events API pull and backfill. Without an API key the pull is skipped with a log line."""

    api_key: str | None = None
    api_base: str | None = None
    overlap_seconds: int = PullSettings.overlap_seconds
    requests_per_second: float = PullSettings.requests_per_second
    types: list[str] = []

    def settings(self, landing_dir: Path) -> PullSettings | None:
        if not self.api_key:
            return None
        return PullSettings(
            api_key=self.api_key,
            landing_dir=landing_dir,
            api_base=self.api_base,
            overlap_seconds=self.overlap_seconds,
            requests_per_second=self.requests_per_second,
            types=tuple(self.types),
        )

    @classmethod
    def from_env(cls) -> "StripeResource":
        s = PullSettings.from_env()
        if s is None:
            return cls()
        # the key stays an EnvVar so the UI and logs never show its value
        return cls(
            api_key=dg.EnvVar("STRIPE_API_KEY"),
            api_base=s.api_base,
            overlap_seconds=s.overlap_seconds,
            requests_per_second=s.requests_per_second,
            types=list(s.types),
        )


def default_resources() -> dict:
    """Resources from the environment. Paths are resolved against the working directory now, so the dbt
    subprocess and every asset see the same files whatever directory they run in."""
    warehouse = str(config.warehouse_path())
    os.environ["WAREHOUSE_PATH"] = warehouse  # read by dbt_project/profiles.yml
    return {
        "warehouse": WarehouseResource(path=warehouse),
        "landing_zone": LandingZoneResource(path=str(config.landing_dir())),
        "tiktok": TikTokResource.from_env(),
        "stripe": StripeResource.from_env(),
    }
