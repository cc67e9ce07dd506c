"""The TikTok delivery's settings: what to send (SendPolicy) and how (DeliverySettings), each setting written once
with the environment variable it is read from (ingestion/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ingestion.settings import env_field, from_env
from reverse_etl.payload import PayloadSettings

SCOPES = ("all", "tiktok_attributed")


@dataclass(frozen=True)
class SendPolicy:
    """Which conversions are sent. ``scope``: ``all`` (every eligible conversion, i.e. with at least one match
    key) or ``tiktok_attributed`` (first touch is TikTok Ads). Renewals can be left out. Conversions older than
    ``max_event_age_days`` are recorded ``expired`` (TikTok's own limit is reported as 7 or 28 days)."""

    scope: str = env_field("TIKTOK_SEND_SCOPE", "all")
    include_renewals: bool = env_field("TIKTOK_INCLUDE_RENEWALS", True)
    max_event_age_days: float = env_field("TIKTOK_MAX_EVENT_AGE_DAYS", 7.0)

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"TIKTOK_SEND_SCOPE must be one of {SCOPES}, not {self.scope!r}")
        if self.max_event_age_days <= 0:
            raise ValueError("TIKTOK_MAX_EVENT_AGE_DAYS must be positive")


@dataclass(frozen=True)
class DeliverySettings:
    """Every TikTok setting, each written once with the environment variable it is read from (`from_env`); the
    Dagster resource's config is derived from these fields (orchestration/resources.py)."""

    access_token: str | None = env_field("TIKTOK_ACCESS_TOKEN")
    pixel_code: str | None = env_field("TIKTOK_PIXEL_CODE")
    api_base_url: str = env_field("TIKTOK_API_BASE_URL", "https://business-api.tiktok.com")
    test_event_code: str | None = env_field("TIKTOK_TEST_EVENT_CODE")
    policy: SendPolicy = field(default_factory=SendPolicy)
    payload: PayloadSettings = field(default_factory=PayloadSettings)
    batch_size: int = env_field("TIKTOK_BATCH_SIZE", 1000)
    concurrency: int = env_field("TIKTOK_CONCURRENCY", 4)
    requests_per_second: float = env_field("TIKTOK_REQUESTS_PER_SECOND", 50.0)
    timeout_seconds: float = env_field("TIKTOK_TIMEOUT_SECONDS", 15.0)
    max_attempts_per_run: int = env_field("TIKTOK_MAX_ATTEMPTS_PER_RUN", 5)
    max_total_attempts: int = env_field("TIKTOK_MAX_TOTAL_ATTEMPTS", 15)
    # a run that left events failed_retryable is followed by a retry of those alone, this long after it, doubling
    # with each run that fails them again, up to the maximum (the retry sensor; new data does not have to arrive)
    retry_first_wait_seconds: float = env_field("TIKTOK_RETRY_FIRST_WAIT_SECONDS", 60.0)
    retry_max_wait_seconds: float = env_field("TIKTOK_RETRY_MAX_WAIT_SECONDS", 3600.0)
    # a subscription's first invoice whose Checkout Session has not landed waits this long after the purchase
    # before it is sent under the invoice's id (Stripe does not order checkout.session.completed and invoice.paid;
    # sent early, a purchase made through Checkout would reach TikTok twice: here under the invoice id, from the
    # pixel under the session's); 0: no wait
    checkout_session_wait_seconds: float = env_field("TIKTOK_CHECKOUT_SESSION_WAIT_SECONDS", 120.0)
    # days the ledger keeps a settled event's IP address and user agent (the rest of its record is kept)
    context_retention_days: float = env_field("TIKTOK_LEDGER_CONTEXT_RETENTION_DAYS", 30.0)
    # processes that check payloads against the schema beside the sending; None: one per spare core (up to 4)
    # once a run has 5,000 events to send; 0: in this process
    validation_processes: int | None = env_field("TIKTOK_VALIDATION_PROCESSES")
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    now: datetime | None = None  # "now" for the age limit; the clock when None

    def __post_init__(self):
        if not 1 <= self.batch_size <= 1000:
            raise ValueError("TIKTOK_BATCH_SIZE must be between 1 and 1000 (the Events API's limit)")
        if self.concurrency < 1 or self.max_attempts_per_run < 1 or self.max_total_attempts < 1:
            raise ValueError("TikTok concurrency and attempt limits must be at least 1")
        if self.checkout_session_wait_seconds < 0:
            raise ValueError("TIKTOK_CHECKOUT_SESSION_WAIT_SECONDS must not be negative")
        if self.validation_processes is not None and not 0 <= self.validation_processes <= 64:
            raise ValueError("TIKTOK_VALIDATION_PROCESSES must be between 0 and 64")

    @property
    def dry_run(self) -> bool:
        return not (self.access_token and self.pixel_code)

    @classmethod
    def from_env(cls, env: dict | None = None) -> DeliverySettings:
        return from_env(cls, env)
