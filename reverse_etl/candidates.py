"""Candidate selection: which conversions a delivery run looks at, what becomes of each (send, record as
``no_consent`` or ``expired``, leave for later), and the columns of events to send (`Batch`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import orjson

from reverse_etl.ledger import TABLE, LedgerRow, Status
from reverse_etl.settings import DeliverySettings
from reverse_etl.sql_payload import contents_json_query, payload_columns, prepared_columns

CONVERSIONS = "marts.tiktok_conversions"
CONTENTS = "marts.tiktok_conversion_contents"


class Batch:
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

    def __getitem__(self, part: slice) -> Batch:
        return Batch(*(getattr(self, c)[part] for c in self.__slots__))

    def without(self, positions) -> Batch:
        keep = [i for i in range(len(self)) if i not in positions]
        return Batch(*([getattr(self, c)[i] for i in keep] for c in self.__slots__))

    def in_ledger_or_not(self, known: bool) -> Batch:
        """The events that already have a ledger row (``known``), or those that have none."""
        if all(k is known for k in self.in_ledger):
            return self
        return self.without({i for i, k in enumerate(self.in_ledger) if k is not known})

    def cut(self, n: int) -> Batch:
        """The first ``n`` events, removed from this batch."""
        head = self[:n]
        for c in self.__slots__:
            del getattr(self, c)[:n]
        return head


@dataclass(frozen=True)
class Outcome:
    """What became of a group of items sent together (a batch, or a part of one after bisection)."""

    items: Batch
    status: str
    attempts: int
    code: int | None
    message: str
    request_id: str | None


def utc_naive(ts: datetime) -> datetime:
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


def has_contents(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts' "
            "and table_name = 'tiktok_conversion_contents'"
        ).fetchall()[0][0]
    )


AWAITING_CHECKOUT_SESSION = "awaiting_checkout_session"


def candidates_sql(settings: DeliverySettings, with_contents: bool, oldest: int, held_after: int | None = None) -> str:
    """Candidates (no ledger row, or ``dry_run`` / ``failed_retryable``), each with its ``action``: ``send``, or
    the reason it is not sent (``no_consent``, ``expired`` are recorded; the others are left for later runs: among
    them a first invoice awaiting its Checkout Session, bought after ``held_after``, which nothing is recorded of so
    that its id can still become the session's). The payload is built only for the rows to send."""
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
    held = (
        "false"
        if held_after is None
        else f"coalesce(c.awaits_checkout_session, false) and cast(epoch(c.event_time) as bigint) > {int(held_after)}"
    )
    return f"""
        with candidates as (
            select c.*, l.status as ledger_status, coalesce(l.attempts, 0) as ledger_attempts,
                   l.first_attempt_at as ledger_first_attempt_at,
                   case when {held} then '{AWAITING_CHECKOUT_SESSION}'
                        when not coalesce(c.advertising_consent, false) then '{Status.NO_CONSENT}'
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


def _marks_checkout_waits(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the conversions mark the invoices awaiting their Checkout Session (a table of conversions made
    without the column, as a test or an older build may have, holds none back)."""
    return bool(
        con.execute(
            "select count(*) from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'tiktok_conversions' and column_name = 'awaits_checkout_session'"
        ).fetchall()[0][0]
    )


def checkout_waits_due(
    con: duckdb.DuckDBPyConnection, now: datetime, wait_seconds: float
) -> tuple[int, datetime | None]:
    """How many first invoices held for their Checkout Session (see ``candidates_sql``) have waited long enough
    at ``now`` (naive UTC) and are still unsent, and the newest purchase time among them: the retry sensor starts a
    delivery for them, as no new data may come to start one."""
    if wait_seconds <= 0 or not _marks_checkout_waits(con):
        return 0, None
    due, newest = con.execute(
        f"""
        select count(*), max(c.event_time) from {CONVERSIONS} c
        left join {TABLE} l using (event_id)
        where c.awaits_checkout_session and c.eligible and (l.event_id is null or l.status = '{Status.DRY_RUN}')
          and c.event_time <= ?
        """,
        [now - timedelta(seconds=wait_seconds)],
    ).fetchall()[0]
    return due, newest


def python_row(con: duckdb.DuckDBPyConnection, event_id: str) -> dict:
    cur = con.execute(f"select {BUILD_COLUMNS} from {CONVERSIONS} c where c.event_id = ?", [event_id])
    cols = [d[0] for d in cur.description]
    return dict(zip(cols, cur.fetchall()[0], strict=False))


def candidate_chunks(
    con: duckdb.DuckDBPyConnection,
    settings: DeliverySettings,
    oldest: int,
    size: int = 5000,
    held_after: int | None = None,
):
    """Candidates as chunks of tuples (``CANDIDATE_COLUMNS``), on a cursor of their own, so sending and ledger
    writes start while DuckDB still hands over rows (and the ledger writer's connection is never busy with
    this result)."""
    sql = candidates_sql(settings, has_contents(con), oldest, held_after if _marks_checkout_waits(con) else None)
    cur = con.cursor()
    try:
        cur.execute(sql)
        while chunk := cur.fetchmany(size):
            yield chunk
    finally:
        cur.close()


def python_contents(con: duckdb.DuckDBPyConnection, event_ids: set[str]) -> dict[str, list[dict]]:
    """Contents for the few rows the SQL builder leaves to Python."""
    contents: dict[str, list[dict]] = defaultdict(list)
    if event_ids and has_contents(con):
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


def prepare(
    chunk: list[tuple],
    build,
    settings: DeliverySettings,
    now: datetime,
    counts: dict[str, int],
    pending: Batch,
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
            counts[action] += 1


def invalid_rows(batch: Batch, problems: list[tuple[int, str]], now: datetime) -> tuple[Batch, list[LedgerRow]]:
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
