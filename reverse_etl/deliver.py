"""Deliver marts.tiktok_conversions to the TikTok Events API, exactly once per event id, through the ledger.

One run:
1. Candidates: conversions with no ledger row, or whose row is ``dry_run`` or ``failed_retryable``.
2. Each is classified: consent denied -> ``no_consent``; not eligible (no match key, still settling, zero value)
   -> left for a later run; outside the sending policy -> left alone; older than the maximum age -> ``expired``;
   payload invalid against the JSON schema -> ``failed_permanent``; otherwise it is sent (or, without
   credentials, recorded ``dry_run`` with its hashed payload).
3. Sending: batches of up to ``batch_size``, ``concurrency`` requests in flight under a requests-per-second cap.
   HTTP 200 is not success: the body's ``code`` is. 40100, HTTP 429/5xx, timeouts and dropped connections are
   retried with exponential backoff and jitter under the same event ids; a batch rejected for a bad parameter
   (40002, HTTP 400/413) is bisected until the bad event is alone, and only that one fails; 40001 (or HTTP
   401/403) stops the run with an actionable message. A batch still failing after ``max_attempts_per_run`` is
   ``failed_retryable`` and tried again by later runs, until ``max_total_attempts`` makes it ``failed_permanent``.
4. The ledger is written after every finished batch, in its own transaction.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
import orjson

from reverse_etl.client import (INVALID_PARAMETER, TOO_MANY_REQUESTS, EndpointNotFound, EventsApiClient,
                                PermissionDenied, TikTokError, TransportFailure)
from reverse_etl.ledger import TABLE, LedgerRow, ensure_daily_view, ensure_ledger, write_columns, write_rows
from reverse_etl.payload import PayloadSettings, build_event
from reverse_etl.sql_payload import contents_json_query, payload_columns, prepared_columns
from reverse_etl.validate import all_valid, event_error

CONVERSIONS = "marts.tiktok_conversions"
CONTENTS = "marts.tiktok_conversion_contents"
SCOPES = ("all", "tiktok_attributed")


class DeliveryStopped(TikTokError):
    """The run stopped because retrying cannot help (permission, wrong endpoint). The message says what to do."""


@dataclass(frozen=True)
class SendPolicy:
    """Which conversions are sent. ``scope``: ``all`` (every eligible conversion, i.e. with at least one match
    key) or ``tiktok_attributed`` (first touch is TikTok Ads). Renewals can be left out. Conversions older than
    ``max_event_age_days`` are recorded ``expired`` (TikTok's own limit is reported as 7 or 28 days)."""

    scope: str = "all"
    include_renewals: bool = True
    max_event_age_days: float = 7.0

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"TIKTOK_SEND_SCOPE must be one of {SCOPES}, not {self.scope!r}")
        if self.max_event_age_days <= 0:
            raise ValueError("TIKTOK_MAX_EVENT_AGE_DAYS must be positive")


@dataclass(frozen=True)
class DeliverySettings:
    access_token: str | None = None
    pixel_code: str | None = None
    api_base_url: str = "https://business-api.tiktok.com"
    test_event_code: str | None = None
    policy: SendPolicy = field(default_factory=SendPolicy)
    payload: PayloadSettings = field(default_factory=PayloadSettings)
    batch_size: int = 1000
    concurrency: int = 4
    requests_per_second: float = 50.0
    timeout_seconds: float = 15.0
    max_attempts_per_run: int = 5
    max_total_attempts: int = 15
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    now: datetime | None = None  # "now" for the age limit; the clock when None

    def __post_init__(self):
        if not 1 <= self.batch_size <= 1000:
            raise ValueError("TIKTOK_BATCH_SIZE must be between 1 and 1000 (the Events API's limit)")
        if self.concurrency < 1 or self.max_attempts_per_run < 1 or self.max_total_attempts < 1:
            raise ValueError("TikTok concurrency and attempt limits must be at least 1")

    @property
    def dry_run(self) -> bool:
        return not (self.access_token and self.pixel_code)

    @classmethod
    def from_env(cls, env: dict | None = None) -> DeliverySettings:
        env = os.environ if env is None else env

        def get(name, default=None, cast=str):
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return cast(raw)
            except ValueError as e:
                raise ValueError(f"{name}={raw!r} is not a valid {cast.__name__}") from e

        return cls(
            access_token=get("TIKTOK_ACCESS_TOKEN"), pixel_code=get("TIKTOK_PIXEL_CODE"),
            api_base_url=get("TIKTOK_API_BASE_URL", "https://business-api.tiktok.com"),
            test_event_code=get("TIKTOK_TEST_EVENT_CODE"),
            policy=SendPolicy(scope=get("TIKTOK_SEND_SCOPE", "all"),
                              include_renewals=get("TIKTOK_INCLUDE_RENEWALS", True, _bool),
                              max_event_age_days=get("TIKTOK_MAX_EVENT_AGE_DAYS", 7.0, float)),
            payload=PayloadSettings(default_phone_region=get("TIKTOK_DEFAULT_PHONE_REGION", "US"),
                                    limited_data_use=get("TIKTOK_LIMITED_DATA_USE", False, _bool)),
            batch_size=get("TIKTOK_BATCH_SIZE", 1000, int), concurrency=get("TIKTOK_CONCURRENCY", 4, int),
            requests_per_second=get("TIKTOK_REQUESTS_PER_SECOND", 50.0, float),
            timeout_seconds=get("TIKTOK_TIMEOUT_SECONDS", 15.0, float),
            max_attempts_per_run=get("TIKTOK_MAX_ATTEMPTS_PER_RUN", 5, int),
            max_total_attempts=get("TIKTOK_MAX_TOTAL_ATTEMPTS", 15, int),
        )


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not a boolean")


@dataclass
class DeliveryResult:
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    requests: int = 0
    seconds: float = 0.0

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)


@dataclass
class _Item:
    row: dict
    encoded: bytes   # the event as JSON, sent as is and kept in the ledger
    prior_attempts: int
    first_attempt_at: datetime | None


@dataclass
class _Outcome:
    item: _Item
    status: str
    attempts: int
    code: int | None
    message: str
    request_id: str | None


def _utc_naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


# What build_event needs; the fast path only reads the payload DuckDB built, so these are fetched for the rare
# rows it leaves to Python.
BUILD_COLUMNS = """c.event_id, c.event_name, cast(epoch(c.event_time) as bigint) as event_time, c.purchase_id,
    c.customer_id, cast(c.value as double) as value, c.currency, c.page_url, c.ttclid, c.ttp, c.emails, c.phones,
    c.ip, c.user_agent, c.locale"""


def _has_contents(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = 'marts' "
                            "and table_name = 'tiktok_conversion_contents'").fetchall()[0][0])


def _candidates_sql(settings: DeliverySettings, with_contents: bool) -> str:
    contents = (f"left join ({contents_json_query(CONTENTS)}) ct using (event_id)" if with_contents
                else "left join (select null as event_id, null as contents_json) ct using (event_id)")
    return f"""
        select c.event_id, c.event_name, cast(epoch(c.event_time) as bigint) as event_time, c.is_renewal,
               c.attributed_to_tiktok, c.advertising_consent, c.eligible, c.ineligible_reason,
               l.status as ledger_status, coalesce(l.attempts, 0) as ledger_attempts,
               l.first_attempt_at as ledger_first_attempt_at,
               {payload_columns(settings.payload.limited_data_use)}
        from (select *, {prepared_columns()} from {CONVERSIONS} c) c
        left join {TABLE} l using (event_id)
        {contents}
        where l.event_id is null or l.status in ('dry_run', 'failed_retryable')
    """  # no order: unsorted, DuckDB hands rows over while it still builds the rest


def _python_row(con: duckdb.DuckDBPyConnection, event_id: str) -> dict:
    cur = con.execute(f"select {BUILD_COLUMNS} from {CONVERSIONS} c where c.event_id = ?", [event_id])
    cols = [d[0] for d in cur.description]
    return dict(zip(cols, cur.fetchall()[0]))


def _iter_candidates(con: duckdb.DuckDBPyConnection, settings: DeliverySettings):
    """Candidates in chunks, on a cursor of their own, so sending and ledger writes start while DuckDB still
    hands over rows (and the ledger writer's connection is never busy with this result)."""
    with_contents = _has_contents(con)
    cur = con.cursor()
    try:
        cur.execute(_candidates_sql(settings, with_contents))
        cols = [d[0] for d in cur.description]
        while chunk := cur.fetchmany(2000):
            yield from (dict(zip(cols, r)) for r in chunk)
    finally:
        cur.close()


def _python_contents(con: duckdb.DuckDBPyConnection, event_ids: set[str]) -> dict[str, list[dict]]:
    """Contents for the few rows the SQL builder leaves to Python."""
    contents: dict[str, list[dict]] = defaultdict(list)
    if event_ids and _has_contents(con):
        cur = con.execute(f"select event_id, content_id, content_name, content_type, quantity, "
                          f"cast(price as double) as price from {CONTENTS} "
                          f"where event_id in (select unnest(?)) order by event_id, line_key", [sorted(event_ids)])
        for event_id, *values in cur.fetchall():
            contents[event_id].append(dict(zip(("content_id", "content_name", "content_type", "quantity",
                                                "price"), values)))
    return contents


def _prepare(row: dict, build, settings: DeliverySettings, now: datetime,
             oldest: int, result: DeliveryResult) -> LedgerRow | _Item | None:
    """What to do with one candidate: a ledger row to record, an item to send, or None (leave it)."""
    if not row["advertising_consent"]:
        return LedgerRow(row["event_id"], row["event_name"], "no_consent", row["ledger_attempts"],
                         recorded_at=now, last_message="advertising consent denied")
    if not row["eligible"]:
        result.counts[f"not_eligible_{row['ineligible_reason']}"] += 1
        return None
    if (settings.policy.scope == "tiktok_attributed" and not row.get("attributed_to_tiktok")) or \
            (not settings.policy.include_renewals and row.get("is_renewal")):
        result.counts["excluded_by_policy"] += 1
        return None
    if row["ledger_status"] == "dry_run" and settings.dry_run:
        result.counts["already_dry_run"] += 1
        return None
    if row["event_time"] < oldest:  # both Unix seconds
        return LedgerRow(row["event_id"], row["event_name"], "expired", row["ledger_attempts"], recorded_at=now,
                         last_message=f"older than {settings.policy.max_event_age_days:g} days when first due")
    # validated per batch (see _validated), where one call checks a thousand events
    if row["sql_payload"] is not None:
        encoded = row["sql_payload"].encode()
    else:
        encoded = orjson.dumps(build(row))
    return _Item(row, encoded, row["ledger_attempts"], row["ledger_first_attempt_at"])


def _validated(items: list[_Item], now: datetime) -> tuple[list[_Item], list[LedgerRow]]:
    """The items whose payload passes the JSON schema, and ledger rows for those that do not (never sent)."""
    events = orjson.loads(b"[" + b",".join(it.encoded for it in items) + b"]")
    if all_valid(events):
        return items, []
    good, bad = [], []
    for it, event in zip(items, events):
        problem = event_error(event)
        if problem:
            bad.append(LedgerRow(it.row["event_id"], it.row["event_name"], "failed_permanent",
                                 it.row["ledger_attempts"], recorded_at=now,
                                 last_message=f"payload fails the schema: {problem}", payload=it.encoded.decode()))
        else:
            good.append(it)
    return good, bad


def _dry_run_rows(prepared, now: datetime, chunk: int = 1000):
    items: list[_Item] = []

    def flush():
        good, bad = _validated(items, now)
        yield from bad
        # attempts stay as they were: a failed_retryable event recorded as a dry run keeps its count
        yield from (LedgerRow(it.row["event_id"], it.row["event_name"], "dry_run", it.prior_attempts,
                              recorded_at=now, payload=it.encoded.decode()) for it in good)
        items.clear()

    for p in prepared:
        if isinstance(p, _Item):
            items.append(p)
            if len(items) == chunk:
                yield from flush()
        elif p is not None:
            yield p
    if items:
        yield from flush()


def deliver(con: duckdb.DuckDBPyConnection, settings: DeliverySettings,
            transport: httpx.AsyncBaseTransport | None = None, log=None) -> DeliveryResult:
    """One delivery run over the warehouse connection ``con`` (which must be able to write)."""
    log = log or (lambda msg: None)
    started = time.monotonic()
    ensure_ledger(con)
    result = DeliveryResult(dry_run=settings.dry_run)
    now = _utc_naive(settings.now or datetime.now(UTC))
    oldest = int((now - timedelta(days=settings.policy.max_event_age_days)).replace(tzinfo=UTC).timestamp())
    lookup = con.cursor()  # the rare rows DuckDB leaves to Python, read beside the streaming result

    def build(row: dict) -> dict:
        full = _python_row(lookup, row["event_id"])
        return build_event(full, settings.payload, _python_contents(lookup, {row["event_id"]}).get(row["event_id"]))

    rows = _iter_candidates(con, settings)
    prepared = (_prepare(row, build, settings, now, oldest, result) for row in rows)
    try:
        if settings.dry_run:
            records = list(_dry_run_rows(prepared, now))
            write_rows(con, records)
            for r in records:
                result.counts[r.status] += 1
        else:
            asyncio.run(_send_all(con, settings, prepared, result, transport, log, now))
    finally:
        lookup.close()
    ensure_daily_view(con)
    result.seconds = time.monotonic() - started
    return result


async def _send_all(con, settings: DeliverySettings, prepared, result: DeliveryResult, transport, log,
                    now: datetime) -> None:
    """Builds batches and sends them as they are built, so building overlaps the waiting on the network."""
    stop: list[TikTokError] = []
    # One writer drains finished batches into the ledger, several batches per transaction when they pile up,
    # in a thread so the event loop keeps requests flowing (and evenly paced) while DuckDB writes.
    finished: asyncio.Queue = asyncio.Queue()

    async def writer() -> None:
        while True:
            outcomes = [await finished.get()]
            while not finished.empty():
                outcomes.append(finished.get_nowait())
            done = None in outcomes
            rows = [r for batch in outcomes if isinstance(batch, tuple) for r in batch[1]]
            flat = [o for batch in outcomes if isinstance(batch, list) for o in batch]
            if rows:
                await asyncio.to_thread(write_rows, con, rows)
                for r in rows:
                    result.counts[r.status] += 1
            if flat:
                await asyncio.to_thread(_record, con, settings, flat, result)
            if done:
                return

    async with EventsApiClient(settings.api_base_url, settings.access_token, settings.pixel_code,
                               test_event_code=settings.test_event_code, timeout_seconds=settings.timeout_seconds,
                               concurrency=settings.concurrency, requests_per_second=settings.requests_per_second,
                               transport=transport) as client:
        sender = _BatchSender(client, settings, result)

        async def run(batch: list[_Item]) -> None:
            try:
                outcomes = await sender.send(batch)
            except (PermissionDenied, EndpointNotFound) as error:
                stop.append(error)
                code = error.response.code if error.response else None
                outcomes = [_Outcome(it, "failed_retryable", 1, code, str(error)[:1000], None) for it in batch]
            finished.put_nowait(outcomes)

        writing = asyncio.create_task(writer())
        tasks: list[asyncio.Task] = []
        records: list[LedgerRow] = []
        batch: list[_Item] = []
        for p in prepared:
            if stop:
                break
            if isinstance(p, LedgerRow):
                records.append(p)
            elif isinstance(p, _Item):
                batch.append(p)
                if len(batch) == settings.batch_size:
                    batch, invalid = _validated(batch, now)
                    records += invalid
                    if batch:
                        tasks.append(asyncio.create_task(run(batch)))
                    batch = []
                    await asyncio.sleep(0)  # let the requests already built go out
        if batch and not stop:
            batch, invalid = _validated(batch, now)
            records += invalid
            if batch:
                tasks.append(asyncio.create_task(run(batch)))
        log(f"all {len(tasks)} batches built")
        finished.put_nowait(("rows", records))  # no_consent, expired, invalid: recorded by the same writer
        while tasks and not stop:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                tasks.remove(task)
                task.result()  # an unexpected error ends the run here, with its traceback
        if stop:
            # batches still in flight may or may not have reached TikTok: they keep no ledger row and the
            # next run sends them again under the same event ids, which TikTok deduplicates
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        log("all batches answered")
        finished.put_nowait(None)
        await writing
        log("ledger written")
        if stop:
            log(f"stopped: {stop[0]}")
            raise DeliveryStopped(str(stop[0]), stop[0].response) from stop[0]


def _record(con, settings: DeliverySettings, outcomes: list[_Outcome], result: DeliveryResult) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    totals = [o.item.prior_attempts + o.attempts for o in outcomes]
    statuses, messages = [], []
    for o, total in zip(outcomes, totals):
        if o.status == "failed_retryable" and total >= settings.max_total_attempts:
            statuses.append("failed_permanent")
            messages.append(f"gave up after {total} attempts; last: {o.message}")
        else:
            statuses.append(o.status)
            messages.append(o.message)
    for status in statuses:
        result.counts[status] += 1
    write_columns(con, {
        "event_id": [o.item.row["event_id"] for o in outcomes],
        "event_name": [o.item.row["event_name"] for o in outcomes],
        "status": statuses, "attempts": totals, "last_code": [o.code for o in outcomes], "last_message": messages,
        "request_id": [o.request_id for o in outcomes],
        "first_attempt_at": [o.item.first_attempt_at or now for o in outcomes],
        "last_attempt_at": [now] * len(outcomes), "recorded_at": [now] * len(outcomes),
        "payload": [o.item.encoded.decode() for o in outcomes],
    })


class _BatchSender:
    def __init__(self, client: EventsApiClient, settings: DeliverySettings, result: DeliveryResult):
        self.client = client
        self.settings = settings
        self.result = result

    def _backoff(self, attempt: int, throttled: bool) -> float:
        base = self.settings.backoff_base_seconds * (4 if throttled else 1)
        return min(self.settings.backoff_max_seconds, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)

    async def send(self, items: list[_Item]) -> list[_Outcome]:
        # never past the total limit: an event with 6 of 7 attempts used gets one more, not a full run's worth
        limit = max(1, min(self.settings.max_attempts_per_run,
                           min(self.settings.max_total_attempts - it.prior_attempts for it in items)))
        attempts = 0
        while True:
            attempts += 1
            self.result.requests += 1
            throttled = False
            try:
                response = await self.client.track_encoded([it.encoded for it in items])
            except TransportFailure as e:
                last = (None, str(e), None)
            else:
                if response.ok:
                    return [_Outcome(it, "sent", attempts, 0, response.message or "OK", response.request_id)
                            for it in items]
                last = (response.code if response.code is not None else response.http_status,
                        response.message, response.request_id)
                if response.code == INVALID_PARAMETER or response.http_status in (400, 413):
                    if len(items) == 1:
                        return [_Outcome(items[0], "failed_permanent", attempts, *last)]
                    # one bad event must not block the others: split until it is alone
                    mid = len(items) // 2
                    halves = await asyncio.gather(self.send(items[:mid]), self.send(items[mid:]))
                    return [replace(o, attempts=o.attempts + attempts) for half in halves for o in half]
                throttled = response.code == TOO_MANY_REQUESTS or response.http_status == 429
            if attempts >= limit:
                return [_Outcome(it, "failed_retryable", attempts, *last) for it in items]
            await asyncio.sleep(self._backoff(attempts, throttled))
