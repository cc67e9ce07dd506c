"""TikTok ad spend: the Marketing API's synchronous report, pulled per advertiser and day into the warehouse.

``GET /open_api/v1.3/report/integrated/get/`` (docs/tiktok-reporting.md has what was verified and where): a BASIC
report of the AUCTION service at the ad level (``data_level=AUCTION_AD``), dimensions ``ad_id`` and
``stat_time_day``, the attribute metrics that name the ad, its ad group and campaign and the account's currency, and
spend, impressions, clicks and TikTok's own attributed Complete Payment count and value. Days are the advertiser's
account days; one request covers at most 30 of them when ``stat_time_day`` is a dimension, up to 1,000 rows a page.

Report rows are aggregates TikTok revises for days after the fact (late conversions within the attribution window),
not events: each pull of a day replaces that advertiser's rows of that day in ``raw.tiktok_ad_stats`` in one
transaction, so the newest figures win and a re-pull never doubles spend. The row is kept as TikTok sent it (JSON
text); staging reads and casts it, so a malformed metric is a null, never a failed build.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import httpx
import orjson

from ingestion.pacing import RateLimiter, backoff_seconds
from ingestion.settings import env_field, from_env

REPORT_PATH = "/open_api/v1.3/report/integrated/get/"
DIMENSIONS = ("ad_id", "stat_time_day")
# attribute metrics (names and ids of the ad's parents, the account's currency), then the figures
ATTRIBUTE_METRICS = ("campaign_id", "campaign_name", "adgroup_id", "adgroup_name", "ad_name", "currency")
FIGURE_METRICS = ("spend", "impressions", "clicks", "complete_payment", "total_complete_payment_rate")
METRICS = ATTRIBUTE_METRICS + FIGURE_METRICS
MAX_DAYS_PER_REQUEST = 30  # with stat_time_day as a dimension
MAX_PAGE_SIZE = 1000

# return codes (the envelope's `code` decides, not the HTTP status)
OK = 0
NO_PERMISSION = 40001
INVALID_PARAMETER = 40002
TOKEN_EMPTY, TOKEN_EXPIRED, TOKEN_INVALID = 40104, 40102, 40105
RATE_LIMITED = (40016, 40100, 40133)

TABLE = "raw.tiktok_ad_stats"
DDL = f"""
create schema if not exists raw;
-- one row per advertiser, day and ad as the Marketing API's report returned it (payload: the row's JSON); a pull of
-- a day replaces that advertiser's rows of the day
create table if not exists {TABLE} (
    advertiser_id varchar not null, stat_day date not null, ad_id varchar, payload varchar not null,
    _loaded_at timestamp not null
);
"""


def _ids(raw: str) -> tuple[str, ...]:
    ids = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    bad = [v for v in ids if not v.isdigit()]
    if bad:
        raise ValueError(f"advertiser ids are numbers, not {bad[0]!r}")
    return ids


@dataclass(frozen=True)
class ReportingSettings:
    """The spend pull's settings, each written once with the variable it is read from. The Marketing API takes an
    advertiser's access token (TikTok's OAuth for developers' apps), not the Events API's pixel token."""

    access_token: str | None = env_field("TIKTOK_MARKETING_ACCESS_TOKEN")
    advertiser_ids: tuple[str, ...] = env_field("TIKTOK_ADVERTISER_IDS", (), parse=_ids)
    api_base_url: str = env_field("TIKTOK_MARKETING_API_BASE_URL", "https://business-api.tiktok.com")
    # TikTok credits conversions to the day of the click for as long as its attribution window (7 days by default),
    # so the figures of the last days change: each scheduled pull takes them again
    repull_days: int = env_field("TIKTOK_REPORTING_REPULL_DAYS", 7)
    # the first day of the daily partitions (YYYY-MM-DD): how far back a backfill of the spend can reach
    start_date: str = env_field("TIKTOK_REPORTING_START_DATE", "2025-01-01")
    # the reporting endpoint's limits are per app and low; the pull stays under this many requests a second
    requests_per_second: float = env_field("TIKTOK_REPORTING_REQUESTS_PER_SECOND", 5.0)
    timeout_seconds: float = env_field("TIKTOK_REPORTING_TIMEOUT_SECONDS", 30.0)
    max_attempts: int = env_field("TIKTOK_REPORTING_MAX_ATTEMPTS", 6)
    page_size: int = MAX_PAGE_SIZE
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    def __post_init__(self):
        if self.repull_days < 1 or self.max_attempts < 1:
            raise ValueError("TIKTOK_REPORTING_REPULL_DAYS and TIKTOK_REPORTING_MAX_ATTEMPTS must be at least 1")
        try:
            date.fromisoformat(self.start_date)
        except ValueError:
            raise ValueError(f"TIKTOK_REPORTING_START_DATE is YYYY-MM-DD, not {self.start_date!r}") from None
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"the report's page size is 1 to {MAX_PAGE_SIZE}")

    @property
    def configured(self) -> bool:
        return bool(self.access_token and self.advertiser_ids)

    @classmethod
    def from_env(cls, env: dict | None = None) -> ReportingSettings:
        return from_env(cls, env)


class ReportingError(Exception):
    """The pull cannot go on. ``code`` and ``request_id`` are TikTok's when it answered."""

    def __init__(self, message: str, code: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.request_id = request_id


@dataclass
class PullResult:
    rows: int = 0
    requests: int = 0
    retries: int = 0
    days: list[date] = field(default_factory=list)
    by_advertiser: dict[str, int] = field(default_factory=dict)


def day_windows(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped into inclusive windows of at most MAX_DAYS_PER_REQUEST days."""
    out: list[tuple[date, date]] = []
    for d in sorted(set(days)):
        if out and d == out[-1][1] + timedelta(days=1) and (d - out[-1][0]).days < MAX_DAYS_PER_REQUEST:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


class ReportingClient:
    """One advertiser's report pages, paced and retried: rate limits (40100 and its kin) and TikTok's service
    errors (5xxxx, HTTP 5xx, timeouts) are retried with backoff; a refused token or advertiser (4010x, 40001) and a
    refused parameter (40002) stop the pull with TikTok's message and request id."""

    def __init__(self, settings: ReportingSettings, transport: httpx.BaseTransport | None = None, sleep=time.sleep):
        self.settings = settings
        self.sleep = sleep
        self.requests = 0
        self.retries = 0
        self._limiter = RateLimiter(settings.requests_per_second)
        self._http = httpx.Client(
            base_url=settings.api_base_url.rstrip("/"),
            timeout=httpx.Timeout(settings.timeout_seconds),
            transport=transport,
            headers={"Access-Token": settings.access_token or ""},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ReportingClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def report_rows(self, advertiser_id: str, start: date, end: date) -> list[dict]:
        """Every row of the ad-level daily report for [start, end] (inclusive, at most 30 days), all pages."""
        rows: list[dict] = []
        page = 1
        while True:
            data = self._get(
                {
                    "advertiser_id": advertiser_id,
                    "report_type": "BASIC",
                    "service_type": "AUCTION",
                    "data_level": "AUCTION_AD",
                    "dimensions": orjson.dumps(list(DIMENSIONS)).decode(),
                    "metrics": orjson.dumps(list(METRICS)).decode(),
                    "start_date": start.isoformat(),
                    "end_date": end.isoformat(),
                    "page": page,
                    "page_size": self.settings.page_size,
                },
                advertiser_id,
            )
            listed = data.get("list") or []
            if not isinstance(listed, list):
                raise ReportingError(f"advertiser {advertiser_id}: the report's data.list is not a list")
            rows += [r for r in listed if isinstance(r, dict)]
            info = data.get("page_info") or {}
            total_page = info.get("total_page") if isinstance(info, dict) else None
            if not listed or not isinstance(total_page, int) or page >= total_page:
                return rows
            page += 1

    def _get(self, params: dict, advertiser_id: str) -> dict:
        attempt = 0
        while True:
            attempt += 1
            self._limiter.wait(self.sleep)
            self.requests += 1
            retry_why = None
            try:
                reply = self._http.get(REPORT_PATH, params=params)
            except httpx.TransportError as e:
                retry_why = f"{type(e).__name__}: {e}"
            else:
                body = _json(reply)
                code = body.get("code") if isinstance(body, dict) else None
                message = str(body.get("message", ""))[:500] if isinstance(body, dict) else reply.text[:200]
                request_id = body.get("request_id") if isinstance(body, dict) else None
                if reply.status_code == 200 and code == OK:
                    data = body.get("data")
                    return data if isinstance(data, dict) else {}
                if reply.status_code >= 500 or code in RATE_LIMITED or (isinstance(code, int) and code >= 50000):
                    retry_why = f"HTTP {reply.status_code}, code {code}: {message}"
                elif code in (TOKEN_EMPTY, TOKEN_EXPIRED, TOKEN_INVALID) or reply.status_code in (401, 403):
                    raise ReportingError(
                        f"TikTok refused the Marketing API access token (code {code}: {message}). Set "
                        "TIKTOK_MARKETING_ACCESS_TOKEN to an advertiser access token with reporting permission "
                        "(request id {request_id}).",
                        code,
                        request_id,
                    )
                elif code == NO_PERMISSION:
                    raise ReportingError(
                        f"the access token has no permission on advertiser {advertiser_id} (code {code}: {message}); "
                        "check TIKTOK_ADVERTISER_IDS and the app's authorization",
                        code,
                        request_id,
                    )
                else:
                    raise ReportingError(
                        f"advertiser {advertiser_id}: the report request was refused (HTTP {reply.status_code}, "
                        f"code {code}: {message}; request id {request_id})",
                        code if isinstance(code, int) else None,
                        request_id,
                    )
            if attempt >= self.settings.max_attempts:
                raise ReportingError(f"advertiser {advertiser_id}: gave up after {attempt} attempts ({retry_why})")
            self.retries += 1
            self.sleep(backoff_seconds(attempt, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds))


def _json(reply: httpx.Response):
    try:
        return reply.json()
    except ValueError:
        return None


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def _row_day(row: dict) -> date | None:
    raw = (row.get("dimensions") or {}).get("stat_time_day") if isinstance(row.get("dimensions"), dict) else None
    try:
        return date.fromisoformat(str(raw)[:10])
    except ValueError:
        return None


def pull_days(
    con: duckdb.DuckDBPyConnection,
    settings: ReportingSettings,
    days: Iterable[date],
    transport: httpx.BaseTransport | None = None,
    sleep=time.sleep,
) -> PullResult:
    """Pull the report of these days for every configured advertiser and replace their rows in the warehouse, one
    transaction per advertiser and window (a failure leaves the days before it written and the rest as they were)."""
    ensure_table(con)
    days = sorted(set(days))
    result = PullResult(days=days)
    with ReportingClient(settings, transport, sleep) as client:
        for advertiser_id in settings.advertiser_ids:
            result.by_advertiser[advertiser_id] = 0
            for start, end in day_windows(days):
                rows = client.report_rows(advertiser_id, start, end)
                loaded_at = datetime.now(UTC).replace(tzinfo=None)
                records = []
                for row in rows:
                    day = _row_day(row)
                    if day is None or not start <= day <= end:
                        continue  # a row without its day cannot be placed; a day outside was not asked for
                    ad_id = (row.get("dimensions") or {}).get("ad_id")
                    records.append(
                        (
                            advertiser_id,
                            day,
                            None if ad_id is None else str(ad_id),
                            orjson.dumps(row).decode(),
                            loaded_at,
                        )
                    )
                con.execute("begin")
                try:
                    con.execute(
                        f"delete from {TABLE} where advertiser_id = ? and stat_day between ? and ?",
                        [advertiser_id, start, end],
                    )
                    if records:
                        con.executemany(f"insert into {TABLE} values (?, ?, ?, ?, ?)", records)
                    con.execute("commit")
                except BaseException:
                    con.execute("rollback")
                    raise
                result.rows += len(records)
                result.by_advertiser[advertiser_id] += len(records)
        result.requests, result.retries = client.requests, client.retries
    return result
