"""Typed resources, configured from the environment (see .env.example)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from ingestion import config
from ingestion.stripe_pull import PullSettings
from reverse_etl.deliver import DeliverySettings, SendPolicy
from reverse_etl.payload import PayloadSettings


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


class TikTokResource(dg.ConfigurableResource):
    """TikTok Events API delivery settings. Without an access token and pixel code, deliveries are dry runs:
    payloads are built, validated and recorded in the ledger, and nothing is sent."""

    # the defaults are the delivery's own, so the UI shows what a run without configuration would do
    access_token: str | None = None
    pixel_code: str | None = None
    api_base_url: str = DeliverySettings.api_base_url
    test_event_code: str | None = None
    send_scope: str = SendPolicy.scope
    include_renewals: bool = SendPolicy.include_renewals
    max_event_age_days: float = SendPolicy.max_event_age_days
    default_phone_region: str = PayloadSettings.default_phone_region
    limited_data_use: bool = PayloadSettings.limited_data_use
    batch_size: int = DeliverySettings.batch_size
    concurrency: int = DeliverySettings.concurrency
    requests_per_second: float = DeliverySettings.requests_per_second
    timeout_seconds: float = DeliverySettings.timeout_seconds
    max_attempts_per_run: int = DeliverySettings.max_attempts_per_run
    max_total_attempts: int = DeliverySettings.max_total_attempts
    context_retention_days: float = DeliverySettings.context_retention_days
    # processes checking payloads against the schema while others are sent; unset: one per spare core
    validation_processes: int | None = DeliverySettings.validation_processes

    def settings(self) -> DeliverySettings:
        return DeliverySettings(
            access_token=self.access_token,
            pixel_code=self.pixel_code,
            api_base_url=self.api_base_url,
            test_event_code=self.test_event_code,
            policy=SendPolicy(
                scope=self.send_scope,
                include_renewals=self.include_renewals,
                max_event_age_days=self.max_event_age_days,
            ),
            payload=PayloadSettings(
                default_phone_region=self.default_phone_region, limited_data_use=self.limited_data_use
            ),
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            requests_per_second=self.requests_per_second,
            timeout_seconds=self.timeout_seconds,
            max_attempts_per_run=self.max_attempts_per_run,
            max_total_attempts=self.max_total_attempts,
            context_retention_days=self.context_retention_days,
            validation_processes=self.validation_processes,
        )

    @classmethod
    def from_env(cls) -> "TikTokResource":
        s = DeliverySettings.from_env()
        return cls(
            # the token stays an EnvVar so the UI and logs never show its value
            access_token=dg.EnvVar("TIKTOK_ACCESS_TOKEN") if s.access_token else None,
            pixel_code=s.pixel_code,
            api_base_url=s.api_base_url,
            test_event_code=s.test_event_code,
            send_scope=s.policy.scope,
            include_renewals=s.policy.include_renewals,
            max_event_age_days=s.policy.max_event_age_days,
            default_phone_region=s.payload.default_phone_region,
            limited_data_use=s.payload.limited_data_use,
            batch_size=s.batch_size,
            concurrency=s.concurrency,
            requests_per_second=s.requests_per_second,
            timeout_seconds=s.timeout_seconds,
            max_attempts_per_run=s.max_attempts_per_run,
            max_total_attempts=s.max_total_attempts,
            context_retention_days=s.context_retention_days,
            validation_processes=s.validation_processes,
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
