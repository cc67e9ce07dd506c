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
(``reverse_etl.validate.ValidatorPool``); events travel as columns of JSON text
(``candidates.Batch``), not one object each.

The run's parts: settings and policy (reverse_etl/settings.py), candidate selection (reverse_etl/candidates.py),
sending (reverse_etl/sending.py), recording (reverse_etl/ledger.py); this module strings them together.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import duckdb
import httpx

from reverse_etl.candidates import (
    Batch,
    candidate_chunks,
    invalid_rows,
    prepare,
    python_contents,
    python_row,
    utc_naive,
)
from reverse_etl.ledger import LedgerRow, Status, ensure_daily_view, redact_client_context, write_rows
from reverse_etl.payload import build_event
from reverse_etl.sending import DeliveryResult, DeliveryStopped, send_all
from reverse_etl.settings import DeliverySettings, SendPolicy
from reverse_etl.validate import batch_problems

__all__ = ["DeliveryResult", "DeliverySettings", "DeliveryStopped", "SendPolicy", "deliver"]


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
    now = utc_naive(settings.now or datetime.now(UTC))
    oldest = int((now - timedelta(days=settings.policy.max_event_age_days)).replace(tzinfo=UTC).timestamp())
    lookup = con.cursor()  # the rare rows DuckDB leaves to Python, read beside the streaming result

    def build(event_id: str) -> dict:
        return build_event(
            python_row(lookup, event_id), settings.payload, python_contents(lookup, {event_id}).get(event_id)
        )

    held_after = (
        int((now - timedelta(seconds=settings.checkout_session_wait_seconds)).replace(tzinfo=UTC).timestamp())
        if settings.checkout_session_wait_seconds > 0
        else None
    )
    chunks = candidate_chunks(con, settings, oldest, held_after=held_after)
    try:
        if settings.dry_run:
            records: list[LedgerRow] = []
            for chunk in chunks:
                pending = Batch()
                prepare(chunk, build, settings, now, result.counts, pending, records)
                while len(pending):
                    batch = pending.cut(1000)
                    good, bad = invalid_rows(batch, batch_problems(batch.payloads), now)
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
            asyncio.run(send_all(con, settings, chunks, build, result, transport, log, now))
    finally:
        chunks.close()
        lookup.close()
    # by the wall clock, as the ledger records attempts (``now`` may be set back for the age limit)
    result.redacted = redact_client_context(
        con, datetime.now(UTC).replace(tzinfo=None) - timedelta(days=settings.context_retention_days)
    )
    result.seconds = time.monotonic() - started
    return result
