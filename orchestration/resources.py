"""Typed resources, configured from the environment (see .env.example)."""

import os
import sys
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import dagster as dg
import duckdb

from ingestion import config
from ingestion.pacing import backoff_seconds
from ingestion.postgres_loader import ensure_postgres_schema
from ingestion.postgres_session import PostgresSession
from ingestion.settings import Setting, build, settings_fields, value_of
from ingestion.stripe_pull import PullSettings
from ingestion.tiktok_reporting import ReportingSettings
from orchestration.warehouse_lock import LockHolder, lock_holder, pipeline_use
from reverse_etl.settings import DeliverySettings


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: the DuckDB file at ``path``, or the PostgreSQL database ``url`` names (WAREHOUSE_URL). DuckDB
    allows one writing process, so every asset that opens it for writing runs in the ``warehouse`` pool (limit 1)
    and closes its connection when done; on PostgreSQL the pool keeps the same order of steps, and readers never
    wait (MVCC). With a URL, ``path`` only places the files beside it (the analysts' copy, the report)."""

    path: str
    # postgresql://user:password@host:port/dbname, set from WAREHOUSE_URL as an EnvVar (the UI never shows it)
    url: str | None = None
    # the analysts' copy (orchestration/publish.py); empty: analytics.duckdb beside the warehouse
    analytics_path: str = ""
    # runs the landing sensor starts publish the copy only when the last one is at least this old (a copy holds the
    # warehouse for seconds, which the next purchase on its way to TikTok would wait for)
    analytics_publish_seconds: float = 60.0
    # the marketing report (reporting/marketing_report.py); empty: marketing_report.html beside the warehouse
    report_path: str = ""

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).resolve()

    @property
    def resolved_analytics_path(self) -> Path:
        if self.analytics_path:
            return Path(self.analytics_path).resolve()
        return self.resolved_path.with_name("analytics.duckdb")

    @property
    def resolved_report_path(self) -> Path:
        if self.report_path:
            return Path(self.report_path).resolve()
        return self.resolved_path.with_name("marketing_report.html")

    @property
    def postgres(self) -> config.PostgresWarehouse | None:
        """The PostgreSQL warehouse, or None for the DuckDB file. (Outside a run, as in `python -m
        orchestration.forget`, ``url`` is still the EnvVar itself: its value is read here.)"""
        url = self.url.get_value() if isinstance(self.url, dg.EnvVar) else self.url
        return config.PostgresWarehouse.from_url(url) if url else None

    @property
    def identity(self) -> str:
        """Which warehouse this is, without secrets (for folder names and log lines)."""
        pg = self.postgres
        if pg is None:
            return str(self.resolved_path)
        return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.dbname}"

    def exists(self) -> bool:
        """Whether there is a warehouse to read yet (a PostgreSQL database always is; a DuckDB file once written)."""
        return self.postgres is not None or self.resolved_path.exists()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection | PostgresSession]:
        """A connection for this step: on PostgreSQL a ``PostgresSession`` (DuckDB's calling shape, see
        ingestion/postgres_session.py) over a connection whose raw schema and ledger exist."""
        pg = self.postgres
        if pg is not None:
            con = pg.connect()
            try:
                ensure_postgres_schema(con)  # (in a transaction of its own, before autocommit)
                session = PostgresSession(con)
                yield session
            finally:
                con.close()
            return
        with self._connect_duckdb(read_only) as con:
            yield con

    @contextmanager
    def _connect_duckdb(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for this step. A warehouse locked by another step of the pipeline (or the landing sensor's
        brief read) is waited for with Dagster's RetryRequested, the message naming that step; one held by anyone
        else fails the step at once, since nothing says when they will let go (analysts open ANALYTICS_PATH)."""
        self.resolved_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with pipeline_use(self.resolved_path, _current_step()):
            try:
                con = duckdb.connect(
                    str(self.resolved_path),
                    read_only=read_only,
                    config={"memory_limit": os.environ.get("DUCKDB_MEMORY_LIMIT") or "1GB"},
                )
            except duckdb.IOException as e:
                holder = lock_holder(e, self.resolved_path)
                if holder is None:
                    raise
                raise _busy(holder, self.resolved_path) from None
            if not read_only and self.resolved_path.stat().st_mode & 0o077:
                self.resolved_path.chmod(0o600)  # a warehouse created before files were owner-only
            try:
                yield con
            finally:
                con.close()


# a step that finds the warehouse held by another step of the pipeline waits this often, doubling, jittered
BUSY_RETRIES = 6
BUSY_FIRST_WAIT_SECONDS = 2.0


def busy_build(error: Exception, path: Path) -> Exception | None:
    """What to raise when dbt could not lock the warehouse (``error``, its CLI error, names the holder): wait and
    try again, as a step does for a neighbour; None when ``error`` is no lock conflict. Called once the step has
    itself opened the warehouse again, so a holder outside the pipeline has failed the step already, and one that
    is gone (the landing sensor's read lasts a moment, and its record with it) was a neighbour."""
    holder = lock_holder(error, path)
    if holder is None:
        return None
    return _busy(LockHolder(holder.pid, holder.program, holder.pipeline or "brief read"), path)


def _busy(holder: LockHolder, path: Path) -> Exception:
    if holder.pipeline is not None:
        try:
            attempt = dg.AssetExecutionContext.get().retry_number + 1
        except dg.DagsterInvariantViolationError:
            attempt = 1
        wait = backoff_seconds(attempt, BUSY_FIRST_WAIT_SECONDS, 60.0)
        message = f"the warehouse {path} is held by {holder.describe()}; trying again in {wait:.0f} s"
        dg.get_dagster_logger().info(message)
        return dg.RetryRequested(max_retries=BUSY_RETRIES, seconds_to_wait=wait)
    return dg.Failure(
        description=f"the warehouse {path} is held by {holder.describe()}. Close that connection: analysts, notebooks "
        f"and BI tools should open the published copy (ANALYTICS_PATH), never the warehouse. Not retried.",
        allow_retries=False,
    )


def _current_step() -> str:
    """What this process is doing, for another process that finds the warehouse locked."""
    for context_class in (dg.AssetExecutionContext, dg.AssetCheckExecutionContext):
        try:
            op = context_class.get().op_execution_context
        except dg.DagsterInvariantViolationError:
            continue
        return f"step {op.op.name} of run {op.run_id[:8]}"
    return f"process {Path(sys.argv[0]).name or 'python'}"


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone root: append-only JSONL files under stripe_events/ and tracking/."""

    path: str

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).resolve()


def _config_fields(settings_class: type, prefix: str) -> dict:
    """A Dagster resource's config fields generated from a settings dataclass: one per setting, named after its
    variable without the integration's prefix, with the field's type (lists for tuples: Dagster config holds lists)
    and default, so the UI shows what a run without configuration would do."""
    fields = {}
    annotations = {}
    for setting in settings_fields(settings_class):
        name = _config_name(setting, prefix)
        tuple_of_str = typing.get_origin(setting.type) is tuple
        annotations[name] = list[str] if tuple_of_str else setting.type
        fields[name] = list(setting.default) if tuple_of_str else setting.default
    return {"__annotations__": annotations, **fields}


def _config_name(setting: Setting, prefix: str) -> str:
    return setting.env.removeprefix(prefix).lower()


def _config_values(settings, settings_class: type, prefix: str) -> dict:
    """The config of a resource holding these settings (tuples as lists)."""
    values = {}
    for setting in settings_fields(settings_class):
        value = value_of(settings, setting)
        values[_config_name(setting, prefix)] = list(value) if isinstance(value, tuple) else value
    return values


def _settings_of(resource, settings_class: type, prefix: str):
    return build(
        settings_class, {s.env: getattr(resource, _config_name(s, prefix)) for s in settings_fields(settings_class)}
    )


def _resource_class(name: str, base: type, settings_class: type, prefix: str) -> type:
    """The resource class ``name``: ``base`` (its methods) with the config fields of ``settings_class``."""
    doc = f"{settings_class.__module__}.{settings_class.__name__} as a Dagster resource: {base.__doc__}"
    return type(name, (base,), {"__module__": __name__, "__doc__": doc, **_config_fields(settings_class, prefix)})


class _TikTokResourceBase(dg.ConfigurableResource):
    """TikTok Events API delivery; without an access token and pixel code, deliveries are dry runs."""

    def settings(self) -> DeliverySettings:
        return _settings_of(self, DeliverySettings, "TIKTOK_")

    @classmethod
    def from_env(cls) -> "TikTokResource":
        settings = DeliverySettings.from_env()  # parsed and checked as the delivery reads them
        config = _config_values(settings, DeliverySettings, "TIKTOK_")
        # the token stays an EnvVar so the UI and logs never show its value
        config["access_token"] = dg.EnvVar("TIKTOK_ACCESS_TOKEN") if settings.access_token else None
        return cls(**config)


# TikTok Events API delivery settings, one config field per field of DeliverySettings. Without an access token and
# pixel code, deliveries are dry runs: payloads are built, validated and recorded in the ledger, and nothing is sent.
TikTokResource = _resource_class("TikTokResource", _TikTokResourceBase, DeliverySettings, "TIKTOK_")


class _StripeResourceBase(dg.ConfigurableResource):
    """Stripe Events API pull and backfill; without an API key the pull is skipped."""

    def settings(self, landing_dir: Path) -> PullSettings | None:
        if not self.api_key:
            return None
        return replace(_settings_of(self, PullSettings, "STRIPE_"), landing_dir=landing_dir)

    @classmethod
    def from_env(cls) -> "StripeResource":
        settings = PullSettings.from_env()  # parsed and checked as the pull reads them
        if settings is None:
            return cls()
        config = _config_values(settings, PullSettings, "STRIPE_")
        # the key stays an EnvVar so the UI and logs never show its value
        config["api_key"] = dg.EnvVar("STRIPE_API_KEY")
        return cls(**config)


# Stripe Events API pull and backfill, one config field per field of PullSettings. Without an API key the pull is
# skipped with a log line.
StripeResource = _resource_class("StripeResource", _StripeResourceBase, PullSettings, "STRIPE_")


class _TikTokAdsResourceBase(dg.ConfigurableResource):
    """TikTok ad spend from the Marketing API's reports; without a Marketing API token and advertiser ids the pull
    is skipped."""

    def settings(self) -> ReportingSettings:
        return _settings_of(self, ReportingSettings, "TIKTOK_")

    @classmethod
    def from_env(cls) -> "TikTokAdsResource":
        settings = ReportingSettings.from_env()  # parsed and checked as the pull reads them
        config = _config_values(settings, ReportingSettings, "TIKTOK_")
        # the token stays an EnvVar so the UI and logs never show its value
        config["marketing_access_token"] = dg.EnvVar("TIKTOK_MARKETING_ACCESS_TOKEN") if settings.access_token else None
        return cls(**config)


# TikTok Marketing API reporting settings, one config field per field of ReportingSettings.
TikTokAdsResource = _resource_class("TikTokAdsResource", _TikTokAdsResourceBase, ReportingSettings, "TIKTOK_")


def default_resources() -> dict:
    """Resources from the environment. Paths are resolved against the working directory now, so the dbt
    subprocess and every asset see the same files whatever directory they run in."""
    warehouse = str(config.warehouse_path())
    os.environ["WAREHOUSE_PATH"] = warehouse  # read by dbt_project/profiles.yml
    return {
        "warehouse": WarehouseResource(
            path=warehouse,
            # kept an EnvVar, so the UI and logs never show the password
            url=dg.EnvVar("WAREHOUSE_URL") if config.postgres_warehouse() is not None else None,
            analytics_path=str(config.analytics_path(Path(warehouse))),
            analytics_publish_seconds=config.analytics_publish_seconds(),
            report_path=str(config.report_path(Path(warehouse))),
        ),
        "landing_zone": LandingZoneResource(path=str(config.landing_dir())),
        "tiktok": TikTokResource.from_env(),
        "stripe": StripeResource.from_env(),
        "tiktok_ads": TikTokAdsResource.from_env(),
    }
