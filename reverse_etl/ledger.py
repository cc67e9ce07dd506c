"""The delivery ledger: one row per TikTok event id, so nothing is lost and nothing is sent twice.

Statuses: ``sent`` and ``no_consent``, ``expired``, ``failed_permanent`` are final; ``dry_run`` (recorded without
credentials) and ``failed_retryable`` are picked up again by the next run. Rows are written per finished batch,
in their own transaction, so a crash loses at most the outcome of the batches in flight, which the next run sends
again under the same event ids (TikTok deduplicates on pixel + event + event_id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import duckdb
import pandas as pd

SCHEMA = "reverse_etl"
TABLE = f"{SCHEMA}.tiktok_deliveries"
DAILY_VIEW = f"{SCHEMA}.tiktok_delivery_daily"
# Where the ledger's writes also go: a delivery over a PostgreSQL warehouse runs on an in-memory DuckDB copy of its
# candidates (reverse_etl/postgres.py) and writes every ledger row to PostgreSQL as it writes it there. A context
# variable, so the threads the delivery writes from (asyncio.to_thread copies the context) see it too.
LEDGER_MIRROR: ContextVar[Callable[[pd.DataFrame], None] | None] = ContextVar("ledger_mirror", default=None)


class Status(StrEnum):
    """An event's state in the ledger (the column's values; SQL compares with them as text)."""

    SENT = "sent"
    DRY_RUN = "dry_run"  # recorded without credentials; picked up again by the next run
    FAILED_RETRYABLE = "failed_retryable"  # picked up again by the next run
    FAILED_PERMANENT = "failed_permanent"
    EXPIRED = "expired"
    NO_CONSENT = "no_consent"


STATUSES = tuple(s.value for s in Status)
# settled for good: never picked up again
FINAL_STATUSES = (Status.SENT.value, Status.FAILED_PERMANENT.value, Status.EXPIRED.value, Status.NO_CONSENT.value)
COLUMNS = [
    "event_id",
    "event_name",
    "status",
    "attempts",
    "last_code",
    "last_message",
    "request_id",
    "first_attempt_at",
    "last_attempt_at",
    "recorded_at",
    "payload",
]

DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {TABLE} (
    event_id varchar primary key,
    event_name varchar not null,
    status varchar not null check (status in {STATUSES!r}),
    attempts integer not null default 0,
    last_code integer,
    last_message varchar,
    request_id varchar,
    first_attempt_at timestamp,
    last_attempt_at timestamp,
    recorded_at timestamp not null,
    payload varchar  -- the hashed event as sent (JSON text)
);
-- permanent failures a person has looked at (`python -m reverse_etl --review-failures`); the asset check
-- `no_unreviewed_permanent_failures` fails while any failed_permanent event is missing here
create table if not exists {SCHEMA}.tiktok_failure_reviews (
    event_id varchar primary key,
    reviewed_at timestamp not null,
    reviewed_by varchar,
    note varchar
);
"""


@dataclass
class LedgerRow:
    event_id: str
    event_name: str
    status: str
    attempts: int = 0
    last_code: int | None = None
    last_message: str | None = None
    request_id: str | None = None
    first_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    recorded_at: datetime | None = None
    payload: str | None = None


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def redact_client_context(con: duckdb.DuckDBPyConnection, before: datetime) -> int:
    """Drop the visitor's IP address and user agent (sent to TikTok in clear, as it requires) from the recorded
    payloads of events settled for good before ``before``; the rest of the record stays for audit. Returns how
    many rows were redacted."""
    ensure_ledger(con)
    return con.execute(
        f"""
        update {TABLE}
        set payload = json_merge_patch(payload, '{{"user": {{"ip": null, "user_agent": null}}}}')
        where status in {FINAL_STATUSES!r} and coalesce(last_attempt_at, recorded_at) < ?
          and payload is not null
          and (json_exists(payload, '$.user.ip') or json_exists(payload, '$.user.user_agent'))
    """,
        [before],
    ).fetchall()[0][0]


def erase_events(con: duckdb.DuckDBPyConnection, event_ids: list[str]) -> int:
    """Erase what the ledger holds of a person's events (orchestration/forget.py): the recorded payload (hashed match
    keys, IP, user agent) and TikTok's message. The row itself stays, with its status, so an event that was sent
    is never sent again should its Stripe objects be imported once more. Returns how many rows held something.
    ``con`` may be a PostgreSQL session (ingestion/postgres_session.py): the statement is written for both."""
    ensure_ledger(con)
    if not event_ids:
        return 0
    return len(
        con.execute(
            f"""
            update {TABLE} set payload = null, last_message = null
            where event_id = any(?::varchar[]) and (payload is not null or last_message is not null)
            returning event_id
        """,
            [sorted(set(event_ids))],
        ).fetchall()
    )


def unreviewed_failures(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(last_code, last_message, events, newest) of failed_permanent events nobody has reviewed yet."""
    ensure_ledger(con)
    return con.execute(f"""
        select last_code, last_message, count(*), max(last_attempt_at)
        from {TABLE} d
        where status = '{Status.FAILED_PERMANENT}'
          and not exists (select 1 from {SCHEMA}.tiktok_failure_reviews r where r.event_id = d.event_id)
        group by last_code, last_message order by 3 desc""").fetchall()


def review_failures(con: duckdb.DuckDBPyConnection, reviewed_by: str, note: str | None = None) -> int:
    """Record every unreviewed failed_permanent event as reviewed. Returns how many."""
    ensure_ledger(con)
    before = con.execute(f"select count(*) from {SCHEMA}.tiktok_failure_reviews").fetchall()[0][0]
    con.execute(
        f"""
        insert into {SCHEMA}.tiktok_failure_reviews
        select event_id, now(), ?, ? from {TABLE} d
        where status = '{Status.FAILED_PERMANENT}'
          and not exists (select 1 from {SCHEMA}.tiktok_failure_reviews r where r.event_id = d.event_id)""",
        [reviewed_by, note],
    )
    return con.execute(f"select count(*) from {SCHEMA}.tiktok_failure_reviews").fetchall()[0][0] - before


def write_rows(con: duckdb.DuckDBPyConnection, rows: list[LedgerRow]) -> None:
    """Insert or replace rows by event id, in one transaction."""
    write_columns(con, {c: [getattr(r, c) for r in rows] for c in COLUMNS})


def write_columns(con: duckdb.DuckDBPyConnection, columns: dict[str, list], fresh: bool = False) -> None:
    """Insert or replace rows given column-wise (the fast path: one DataFrame, one statement). ``fresh``: the
    rows are believed to have no ledger row yet, so a plain insert does (a third cheaper than a replace, which
    looks every key up); should one exist after all, the whole write is redone as a replace."""
    if not columns["event_id"]:
        return
    frame = pd.DataFrame({c: columns[c] for c in COLUMNS})
    frame["attempts"] = frame["attempts"].astype("int32")
    frame["last_code"] = frame["last_code"].astype("Int64")
    mirror = LEDGER_MIRROR.get()
    if mirror is not None:
        mirror(frame)
    con.register("_ledger_rows", frame)
    try:
        for verb in ["insert", "insert or replace"] if fresh else ["insert or replace"]:
            con.execute("begin transaction")
            try:
                con.execute(f"{verb} into {TABLE} ({', '.join(COLUMNS)}) select {', '.join(COLUMNS)} from _ledger_rows")
            except duckdb.ConstraintException:
                con.execute("rollback")
                if verb == "insert":
                    continue
                raise
            except BaseException:
                con.execute("rollback")
                raise
            con.execute("commit")
            return
    finally:
        con.unregister("_ledger_rows")


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    ensure_ledger(con)
    return dict(con.execute(f"select status, count(*) from {TABLE} group by status order by status").fetchall())


def ensure_daily_view(con: duckdb.DuckDBPyConnection) -> None:
    """Delivery results per day of the conversion and status, with the match keys that went with them:
    the delivery half of the match-quality report. A view, so it is as fresh as the ledger. Created again only
    when its definition changed (its comment carries a digest of it): DDL commits, and a commit after a large
    delivery is where DuckDB checkpoints, which need not be paid by every run."""
    ensure_ledger(con)
    sql = f"""
        create or replace view {DAILY_VIEW} as
        select
            cast(c.event_time as date) as event_date,
            c.event_name,
            coalesce(l.status, case when c.eligible then 'pending' else 'not_sent_' || c.ineligible_reason end)
                as status,
            count(*) as events,
            count(*) filter (where c.has_ttclid) as with_ttclid,
            count(*) filter (where c.has_email) as with_email,
            count(*) filter (where c.has_phone) as with_phone,
            count(*) filter (where c.has_ttclid or c.has_email or c.has_phone) as with_any_match_key,
            sum(l.attempts) as attempts
        from marts.tiktok_conversions c
        left join {TABLE} l using (event_id)
        group by all
    """
    comment = (
        "TikTok delivery results per day of the conversion and status, with the match keys sent "
        f"(definition {hashlib.sha256(sql.encode()).hexdigest()[:16]})"
    )
    current = con.execute(
        "select comment from duckdb_views() where schema_name = ? and view_name = ?", DAILY_VIEW.split(".")
    ).fetchall()
    if current and current[0][0] == comment:
        return
    con.execute("begin transaction")
    con.execute(sql)
    con.execute(f"comment on view {DAILY_VIEW} is '{comment}'")
    con.execute("commit")


def retries_due(
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    attempts_per_run: int,
    first_wait_seconds: float,
    max_wait_seconds: float,
) -> tuple[int, datetime | None]:
    """How many ``failed_retryable`` events are due for another run at ``now`` (naive UTC), and the newest attempt
    among them: an event waits ``first_wait_seconds`` after the run that failed it, doubled for each earlier run
    that failed it too (its attempts over ``attempts_per_run``), at most ``max_wait_seconds``."""
    if not con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = 'tiktok_deliveries'",
        [SCHEMA],
    ).fetchall()[0][0]:
        return 0, None
    due, newest = con.execute(
        f"""
        select count(*), max(last_attempt_at) from {TABLE}
        where status = ?
          and last_attempt_at + to_microseconds(cast(1e6 * least(
                  ? * power(2, greatest(ceil(attempts / ?) - 1, 0)), ?) as bigint)) <= ?
        """,
        [Status.FAILED_RETRYABLE.value, first_wait_seconds, float(attempts_per_run), max_wait_seconds, now],
    ).fetchall()[0]
    return due, newest
