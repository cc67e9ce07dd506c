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

Where the time goes (100,000 conversions, see ``bench/tiktok_delivery.py``): DuckDB classifies the candidates
and builds every payload in one query (``sql_payload``), handed over in chunks from a thread while the event loop
sends; the schema check (parsing each payload back, about a third of the work) runs in worker processes
(``reverse_etl.validate.ValidatorPool``); events travel as columns of JSON text (``_Batch``), not one object each.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
import orjson

from ingestion.pacing import backoff_seconds
from ingestion.settings import env_field, from_env
from reverse_etl.client import (
    INVALID_PARAMETER,
    TOO_MANY_REQUESTS,
    EndpointNotFound,
    EventsApiClient,
    PermissionDenied,
    TikTokError,
    TransportFailure,
)
from reverse_etl.ledger import (
    TABLE,
    LedgerRow,
    Status,
    ensure_daily_view,
    redact_client_context,
    write_columns,
    write_rows,
)
from reverse_etl.payload import PayloadSettings, build_event
from reverse_etl.sql_payload import contents_json_query, payload_columns, prepared_columns
from reverse_etl.validate import ValidatorPool, batch_problems, json_array

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
        if self.validation_processes is not None and not 0 <= self.validation_processes <= 64:
            raise ValueError("TIKTOK_VALIDATION_PROCESSES must be between 0 and 64")

    @property
    def dry_run(self) -> bool:
        return not (self.access_token and self.pixel_code)

    @classmethod
    def from_env(cls, env: dict | None = None) -> DeliverySettings:
        return from_env(cls, env)


@dataclass
class DeliveryResult:
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    requests: int = 0
    seconds: float = 0.0
    redacted: int = 0  # ledger rows whose IP and user agent outlived TIKTOK_LEDGER_CONTEXT_RETENTION_DAYS

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)


class _Batch:
    """Events to send, column by column (JSON text, and what the ledger needs): 100,000 objects of one per event
    would cost the garbage collector more than sending them. Slicing gives a batch, or half of one."""

    __slots__ = ("event_ids", "event_names", "payloads", "in_ledger", "prior_attempts", "first_attempt_at")

    def __init__(
        self,
        event_ids=None,
        event_names=None,
        payloads=None,
        in_ledger=None,
        prior_attempts=None,
        first_attempt_at=None,
    ):
        self.event_ids: list[str] = event_ids or []
        self.event_names: list[str] = event_names or []
        self.payloads: list[str] = payloads or []  # each event's JSON text, sent as is and kept in the ledger
        self.in_ledger: list[bool] = in_ledger or []
        self.prior_attempts: list[int] = prior_attempts or []
        self.first_attempt_at: list[datetime | None] = first_attempt_at or []

    def __len__(self) -> int:
        return len(self.event_ids)

    def __getitem__(self, part: slice) -> _Batch:
        return _Batch(*(getattr(self, c)[part] for c in self.__slots__))

    def without(self, positions) -> _Batch:
        keep = [i for i in range(len(self)) if i not in positions]
        return _Batch(*([getattr(self, c)[i] for i in keep] for c in self.__slots__))

    def in_ledger_or_not(self, known: bool) -> _Batch:
        """The events that already have a ledger row (``known``), or those that have none."""
        if all(k is known for k in self.in_ledger):
            return self
        return self.without({i for i, k in enumerate(self.in_ledger) if k is not known})

    def cut(self, n: int) -> _Batch:
        """The first ``n`` events, removed from this batch."""
        head = self[:n]
        for c in self.__slots__:
            del getattr(self, c)[:n]
        return head


@dataclass(frozen=True)
class _Outcome:
    """What became of a group of items sent together (a batch, or a part of one after bisection)."""

    items: _Batch
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
    c.customer_name, c.address_city, c.address_state, c.address_country, c.address_postal_code,
    c.ip, c.user_agent, c.locale"""

# the candidates' columns, in this order (tuples, not dicts: 100,000 dicts cost more than sending them)
CANDIDATE_COLUMNS = (
    "event_id",
    "event_name",
    "action",
    "ledger_status",
    "ledger_attempts",
    "ledger_first_attempt_at",
    "sql_payload",
)
SEND = "send"


def _has_contents(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts' "
            "and table_name = 'tiktok_conversion_contents'"
        ).fetchall()[0][0]
    )


def _candidates_sql(settings: DeliverySettings, with_contents: bool, oldest: int) -> str:
    """Candidates (no ledger row, or ``dry_run`` / ``failed_retryable``), each with its ``action``: ``send``, or
    the reason it is not sent (``no_consent``, ``expired`` are recorded; the others are left for later runs).
    The payload is built only for the rows to send."""
    contents = (
        f"left join ({contents_json_query(CONTENTS)}) ct using (event_id)"
        if with_contents
        else "left join (select null as event_id, null as contents_json) ct using (event_id)"
    )
    policy = settings.policy
    excluded = " or ".join(
        ["false"]
        + (["not coalesce(c.attributed_to_tiktok, false)"] if policy.scope == "tiktok_attributed" else [])
        + ([] if policy.include_renewals else ["coalesce(c.is_renewal, false)"])
    )
    return f"""
        with candidates as (
            select c.*, l.status as ledger_status, coalesce(l.attempts, 0) as ledger_attempts,
                   l.first_attempt_at as ledger_first_attempt_at,
                   case when not coalesce(c.advertising_consent, false) then '{Status.NO_CONSENT}'
                        when not coalesce(c.eligible, false)
                            then 'not_eligible_' || coalesce(c.ineligible_reason, 'None')
                        when {excluded} then 'excluded_by_policy'
                        when {f"l.status = '{Status.DRY_RUN}'" if settings.dry_run else "false"} then 'already_dry_run'
                        when cast(epoch(c.event_time) as bigint) < {int(oldest)} then '{Status.EXPIRED}'
                        else '{SEND}' end as action
            from {CONVERSIONS} c
            left join {TABLE} l using (event_id)
            where l.event_id is null or l.status in ('{Status.DRY_RUN}', '{Status.FAILED_RETRYABLE}')
        ), to_send as (
            select *, {prepared_columns()} from candidates c where action = '{SEND}'
        )
        select c.event_id, c.event_name, c.action, c.ledger_status, c.ledger_attempts, c.ledger_first_attempt_at,
               {payload_columns(settings.payload.limited_data_use)}
        from to_send c
        {contents}
        union all
        select event_id, event_name, action, ledger_status, ledger_attempts, ledger_first_attempt_at, null
        from candidates where action <> '{SEND}'
    """  # no order: unsorted, DuckDB hands rows over while it still builds the rest


def _python_row(con: duckdb.DuckDBPyConnection, event_id: str) -> dict:
    cur = con.execute(f"select {BUILD_COLUMNS} from {CONVERSIONS} c where c.event_id = ?", [event_id])
    cols = [d[0] for d in cur.description]
    return dict(zip(cols, cur.fetchall()[0], strict=False))


def _candidate_chunks(con: duckdb.DuckDBPyConnection, settings: DeliverySettings, oldest: int, size: int = 5000):
    """Candidates as chunks of tuples (``CANDIDATE_COLUMNS``), on a cursor of their own, so sending and ledger
    writes start while DuckDB still hands over rows (and the ledger writer's connection is never busy with
    this result)."""
    sql = _candidates_sql(settings, _has_contents(con), oldest)
    cur = con.cursor()
    try:
        cur.execute(sql)
        while chunk := cur.fetchmany(size):
            yield chunk
    finally:
        cur.close()


def _python_contents(con: duckdb.DuckDBPyConnection, event_ids: set[str]) -> dict[str, list[dict]]:
    """Contents for the few rows the SQL builder leaves to Python."""
    contents: dict[str, list[dict]] = defaultdict(list)
    if event_ids and _has_contents(con):
        cur = con.execute(
            f"select event_id, content_id, content_name, content_type, quantity, "
            f"cast(price as double) as price from {CONTENTS} "
            f"where event_id in (select unnest(?)) order by event_id, line_key",
            [sorted(event_ids)],
        )
        for event_id, *values in cur.fetchall():
            contents[event_id].append(
                dict(zip(("content_id", "content_name", "content_type", "quantity", "price"), values, strict=False))
            )
    return contents


def _prepare(
    chunk: list[tuple],
    build,
    settings: DeliverySettings,
    now: datetime,
    result: DeliveryResult,
    pending: _Batch,
    records: list[LedgerRow],
) -> None:
    """Sort one chunk of candidates into events to send (appended to ``pending``) and ledger rows to record (the
    rest is only counted)."""
    ids, names, payloads = pending.event_ids, pending.event_names, pending.payloads
    in_ledger, prior, first = pending.in_ledger, pending.prior_attempts, pending.first_attempt_at
    for event_id, event_name, action, ledger_status, attempts, first_attempt_at, payload in chunk:
        if action == SEND:
            # validated per batch (see ValidatorPool), where one call checks a thousand events
            ids.append(event_id)
            names.append(event_name)
            payloads.append(payload if payload is not None else orjson.dumps(build(event_id)).decode())
            in_ledger.append(ledger_status is not None)
            prior.append(attempts)
            first.append(first_attempt_at)
        elif action == Status.NO_CONSENT:
            records.append(
                LedgerRow(
                    event_id,
                    event_name,
                    Status.NO_CONSENT,
                    attempts,
                    recorded_at=now,
                    last_message="advertising consent denied",
                )
            )
        elif action == Status.EXPIRED:
            records.append(
                LedgerRow(
                    event_id,
                    event_name,
                    Status.EXPIRED,
                    attempts,
                    recorded_at=now,
                    last_message=f"older than {settings.policy.max_event_age_days:g} days when first due",
                )
            )
        else:  # not_eligible_<reason>, excluded_by_policy, already_dry_run: left for a later run
            result.counts[action] += 1


def _invalid_rows(batch: _Batch, problems: list[tuple[int, str]], now: datetime) -> tuple[_Batch, list[LedgerRow]]:
    """Split a batch by the validator's answer: the events to send, and ledger rows for those never sent."""
    if not problems:
        return batch, []
    return batch.without(dict(problems)), [
        LedgerRow(
            batch.event_ids[i],
            batch.event_names[i],
            Status.FAILED_PERMANENT,
            batch.prior_attempts[i],
            recorded_at=now,
            last_message=f"payload fails the schema: {problem}",
            payload=batch.payloads[i],
        )
        for i, problem in problems
    ]


def deliver(
    con: duckdb.DuckDBPyConnection,
    settings: DeliverySettings,
    transport: httpx.AsyncBaseTransport | None = None,
    log=None,
) -> DeliveryResult:
    """One delivery run over the warehouse connection ``con`` (which must be able to write)."""
    log = log or (lambda msg: None)
    started = time.monotonic()
    ensure_daily_view(con)  # (and the ledger) before the run: DDL after a large delivery would checkpoint it
    result = DeliveryResult(dry_run=settings.dry_run)
    now = _utc_naive(settings.now or datetime.now(UTC))
    oldest = int((now - timedelta(days=settings.policy.max_event_age_days)).replace(tzinfo=UTC).timestamp())
    lookup = con.cursor()  # the rare rows DuckDB leaves to Python, read beside the streaming result

    def build(event_id: str) -> dict:
        return build_event(
            _python_row(lookup, event_id), settings.payload, _python_contents(lookup, {event_id}).get(event_id)
        )

    chunks = _candidate_chunks(con, settings, oldest)
    try:
        if settings.dry_run:
            records: list[LedgerRow] = []
            for chunk in chunks:
                pending = _Batch()
                _prepare(chunk, build, settings, now, result, pending, records)
                while len(pending):
                    batch = pending.cut(1000)
                    good, bad = _invalid_rows(batch, batch_problems(batch.payloads), now)
                    records += bad
                    # attempts stay as they were: a failed_retryable event recorded as a dry run keeps its count
                    records += [
                        LedgerRow(event_id, name, Status.DRY_RUN, attempts, recorded_at=now, payload=payload)
                        for event_id, name, payload, attempts in zip(
                            good.event_ids, good.event_names, good.payloads, good.prior_attempts, strict=False
                        )
                    ]
            write_rows(con, records)
            for r in records:
                result.counts[r.status] += 1
        else:
            asyncio.run(_send_all(con, settings, chunks, build, result, transport, log, now))
    finally:
        chunks.close()
        lookup.close()
    # by the wall clock, as the ledger records attempts (``now`` may be set back for the age limit)
    result.redacted = redact_client_context(
        con, datetime.now(UTC).replace(tzinfo=None) - timedelta(days=settings.context_retention_days)
    )
    result.seconds = time.monotonic() - started
    return result


# Below this many events to send, validation stays in this process (a worker's start costs more than it saves).
VALIDATION_POOL_MIN_EVENTS = 5000


def _validation_processes(settings: DeliverySettings) -> int:
    if settings.validation_processes is not None:
        return settings.validation_processes
    return max(1, min(4, (os.cpu_count() or 1) - 1)) if (os.cpu_count() or 1) > 1 else 0


async def _send_all(
    con, settings: DeliverySettings, chunks, build, result: DeliveryResult, transport, log, now: datetime
) -> None:
    """Builds batches and sends them as they are built: DuckDB builds payloads in one thread, worker processes
    validate batches, and the event loop keeps requests in flight meanwhile."""
    stop: list[TikTokError] = []
    loop = asyncio.get_running_loop()
    # Ledger rows are written by this one writer, several batches per transaction when they pile up,
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

    processes = _validation_processes(settings)
    pool: ValidatorPool | None = None
    pool_threads: ThreadPoolExecutor | None = None

    async def validated(batch: _Batch) -> tuple[_Batch, bytes | None]:
        """The batch without the events that fail the schema, and its JSON array when that is unchanged."""
        array = json_array(batch.payloads)
        if pool is None:
            problems = batch_problems(batch.payloads, array)
        else:
            problems = await loop.run_in_executor(pool_threads, pool.problems, batch.payloads, array)
        if not problems:
            return batch, array
        batch, invalid = _invalid_rows(batch, problems, now)
        finished.put_nowait(("rows", invalid))
        return batch, None

    async with EventsApiClient(
        settings.api_base_url,
        settings.access_token,
        settings.pixel_code,
        test_event_code=settings.test_event_code,
        timeout_seconds=settings.timeout_seconds,
        concurrency=settings.concurrency,
        requests_per_second=settings.requests_per_second,
        transport=transport,
    ) as client:
        sender = _BatchSender(client, settings, result)

        async def run(batch: _Batch) -> None:
            batch, array = await validated(batch)
            if not batch or stop:  # stopped: never sent, no ledger row, the next run sends it
                return
            try:
                outcomes = await sender.send(batch, array)
            except (PermissionDenied, EndpointNotFound) as error:
                stop.append(error)
                code = error.response.code if error.response else None
                outcomes = [_Outcome(batch, Status.FAILED_RETRYABLE, 1, code, str(error)[:1000], None)]
            finished.put_nowait(outcomes)

        writing = asyncio.create_task(writer())
        tasks: list[asyncio.Task] = []
        records: list[LedgerRow] = []
        pending = _Batch()
        queued = 0
        try:
            while not stop:
                chunk = await asyncio.to_thread(next, chunks, None)  # DuckDB works while the loop sends
                if chunk is None:
                    break
                _prepare(chunk, build, settings, now, result, pending, records)
                if (
                    pool is None
                    and processes
                    and (
                        settings.validation_processes is not None or queued + len(pending) >= VALIDATION_POOL_MIN_EVENTS
                    )
                ):
                    pool = ValidatorPool(processes)
                    pool_threads = ThreadPoolExecutor(processes, thread_name_prefix="validate")
                while len(pending) >= settings.batch_size and not stop:
                    tasks.append(asyncio.create_task(run(pending.cut(settings.batch_size))))
                    queued += settings.batch_size
            if len(pending) and not stop:
                tasks.append(asyncio.create_task(run(pending)))
            log(f"all {len(tasks)} batches built")
            finished.put_nowait(("rows", records))  # no_consent, expired: recorded by the same writer
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
        except BaseException:
            # an unexpected error: what TikTok already answered is still recorded before the run fails
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not writing.done():
                finished.put_nowait(None)
                await writing
            raise
        finally:
            if pool is not None:
                pool_threads.shutdown(wait=True, cancel_futures=True)
                pool.close()
        if stop:
            log(f"stopped: {stop[0]}")
            raise DeliveryStopped(str(stop[0]), stop[0].response) from stop[0]


def _record(con, settings: DeliverySettings, outcomes: list[_Outcome], result: DeliveryResult) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    for fresh in (True, False):  # first attempts need no lookup of an earlier row (see write_columns)
        columns: dict[str, list] = {
            c: []
            for c in (
                "event_id",
                "event_name",
                "status",
                "attempts",
                "last_code",
                "last_message",
                "request_id",
                "first_attempt_at",
                "payload",
            )
        }
        for o in outcomes:
            b = o.items.in_ledger_or_not(known=not fresh)
            n = len(b)
            columns["event_id"] += b.event_ids
            columns["event_name"] += b.event_names
            columns["first_attempt_at"] += [at or now for at in b.first_attempt_at]
            columns["payload"] += b.payloads
            columns["last_code"] += [o.code] * n
            columns["request_id"] += [o.request_id] * n
            for prior in b.prior_attempts:
                total = prior + o.attempts
                columns["attempts"].append(total)
                if o.status == Status.FAILED_RETRYABLE and total >= settings.max_total_attempts:
                    columns["status"].append(Status.FAILED_PERMANENT)
                    columns["last_message"].append(f"gave up after {total} attempts; last: {o.message}")
                else:
                    columns["status"].append(o.status)
                    columns["last_message"].append(o.message)
        n = len(columns["event_id"])
        write_columns(con, {**columns, "last_attempt_at": [now] * n, "recorded_at": [now] * n}, fresh=fresh)
        for status in columns["status"]:
            result.counts[status] += 1


class _BatchSender:
    def __init__(self, client: EventsApiClient, settings: DeliverySettings, result: DeliveryResult):
        self.client = client
        self.settings = settings
        self.result = result

    def _backoff(self, attempt: int, throttled: bool) -> float:
        base = self.settings.backoff_base_seconds * (4 if throttled else 1)
        return backoff_seconds(attempt, base, self.settings.backoff_max_seconds)

    async def send(self, items: _Batch, array: bytes | None = None) -> list[_Outcome]:
        # never past the total limit: an event with 6 of 7 attempts used gets one more, not a full run's worth
        limit = max(
            1, min(self.settings.max_attempts_per_run, self.settings.max_total_attempts - max(items.prior_attempts))
        )
        attempts = 0
        while True:
            attempts += 1
            self.result.requests += 1
            throttled = False
            try:
                if array is None:
                    array = json_array(items.payloads)
                response = await self.client.track_array(array)
            except TransportFailure as e:
                last = (None, str(e), None)
            else:
                if response.ok:
                    return [_Outcome(items, Status.SENT, attempts, 0, response.message or "OK", response.request_id)]
                last = (
                    response.code if response.code is not None else response.http_status,
                    response.message,
                    response.request_id,
                )
                if response.code == INVALID_PARAMETER or response.http_status in (400, 413):
                    if len(items) == 1:
                        return [_Outcome(items, Status.FAILED_PERMANENT, attempts, *last)]
                    # one bad event must not block the others: split until it is alone
                    mid = len(items) // 2
                    halves = await asyncio.gather(self.send(items[:mid]), self.send(items[mid:]))
                    return [replace(o, attempts=o.attempts + attempts) for half in halves for o in half]
                throttled = response.code == TOO_MANY_REQUESTS or response.http_status == 429
            if attempts >= limit:
                return [_Outcome(items, Status.FAILED_RETRYABLE, attempts, *last)]
            await asyncio.sleep(self._backoff(attempts, throttled))
