"""Sending: batches to the Events API under the rate cap, retried, bisected and recorded in the ledger as they
finish (see reverse_etl/deliver.py for the whole run)."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ingestion.pacing import backoff_seconds
from reverse_etl.candidates import Batch, Outcome, invalid_rows, prepare
from reverse_etl.client import (
    INVALID_PARAMETER,
    TOO_MANY_REQUESTS,
    EndpointNotFound,
    EventsApiClient,
    PermissionDenied,
    TikTokError,
    TransportFailure,
)
from reverse_etl.ledger import COLUMNS, LedgerRow, Status, write_columns, write_rows
from reverse_etl.settings import DeliverySettings
from reverse_etl.validate import ValidatorPool, batch_problems, json_array


class DeliveryStopped(TikTokError):
    """The run stopped because retrying cannot help (permission, wrong endpoint). The message says what to do."""


@dataclass
class DeliveryResult:
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    requests: int = 0
    seconds: float = 0.0
    redacted: int = 0  # ledger rows whose IP and user agent outlived TIKTOK_LEDGER_CONTEXT_RETENTION_DAYS

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)


# Below this many events to send, validation stays in this process (a worker's start costs more than it saves).
VALIDATION_POOL_MIN_EVENTS = 5000


def validation_processes(settings: DeliverySettings) -> int:
    if settings.validation_processes is not None:
        return settings.validation_processes
    return max(1, min(4, (os.cpu_count() or 1) - 1)) if (os.cpu_count() or 1) > 1 else 0


async def send_all(
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
                await asyncio.to_thread(record, con, settings, flat, result)
            if done:
                return

    processes = validation_processes(settings)
    pool: ValidatorPool | None = None
    pool_threads: ThreadPoolExecutor | None = None

    async def validated(batch: Batch) -> tuple[Batch, bytes | None]:
        """The batch without the events that fail the schema, and its JSON array when that is unchanged."""
        array = json_array(batch.payloads)
        if pool is None:
            problems = batch_problems(batch.payloads, array)
        else:
            problems = await loop.run_in_executor(pool_threads, pool.problems, batch.payloads, array)
        if not problems:
            return batch, array
        batch, invalid = invalid_rows(batch, problems, now)
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
        sender = BatchSender(client, settings, result)

        async def run(batch: Batch) -> None:
            batch, array = await validated(batch)
            if not batch or stop:  # stopped: never sent, no ledger row, the next run sends it
                return
            try:
                outcomes = await sender.send(batch, array)
            except (PermissionDenied, EndpointNotFound) as error:
                stop.append(error)
                code = error.response.code if error.response else None
                outcomes = [Outcome(batch, Status.FAILED_RETRYABLE, 1, code, str(error)[:1000], None)]
            finished.put_nowait(outcomes)

        writing = asyncio.create_task(writer())
        tasks: list[asyncio.Task] = []
        records: list[LedgerRow] = []
        pending = Batch()
        queued = 0
        try:
            while not stop:
                chunk = await asyncio.to_thread(next, chunks, None)  # DuckDB works while the loop sends
                if chunk is None:
                    break
                prepare(chunk, build, settings, now, result.counts, pending, records)
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


def record(con, settings: DeliverySettings, outcomes: list[Outcome], result: DeliveryResult) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    for fresh in (True, False):  # first attempts need no lookup of an earlier row (see write_columns)
        # the ledger's columns but the two write_columns sets itself
        columns: dict[str, list] = {c: [] for c in COLUMNS if c not in ("last_attempt_at", "recorded_at")}
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


class BatchSender:
    def __init__(self, client: EventsApiClient, settings: DeliverySettings, result: DeliveryResult):
        self.client = client
        self.settings = settings
        self.result = result

    def _backoff(self, attempt: int, throttled: bool) -> float:
        base = self.settings.backoff_base_seconds * (4 if throttled else 1)
        return backoff_seconds(attempt, base, self.settings.backoff_max_seconds)

    async def send(self, items: Batch, array: bytes | None = None) -> list[Outcome]:
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
                    return [Outcome(items, Status.SENT, attempts, 0, response.message or "OK", response.request_id)]
                last = (
                    response.code if response.code is not None else response.http_status,
                    response.message,
                    response.request_id,
                )
                if response.code == INVALID_PARAMETER or response.http_status in (400, 413):
                    if len(items) == 1:
                        return [Outcome(items, Status.FAILED_PERMANENT, attempts, *last)]
                    # one bad event must not block the others: split until it is alone
                    mid = len(items) // 2
                    halves = await asyncio.gather(self.send(items[:mid]), self.send(items[mid:]))
                    return [replace(o, attempts=o.attempts + attempts) for half in halves for o in half]
                throttled = response.code == TOO_MANY_REQUESTS or response.http_status == 429
            if attempts >= limit:
                return [Outcome(items, Status.FAILED_RETRYABLE, attempts, *last)]
            await asyncio.sleep(self._backoff(attempts, throttled))
