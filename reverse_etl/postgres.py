"""The TikTok delivery over a PostgreSQL warehouse (WAREHOUSE_URL).

The delivery's candidate selection and payload building are DuckDB SQL (``candidates``, ``sql_payload``), held to
the Python builder by a test; rather than a second dialect of them, a run copies what it can act on out of
PostgreSQL into an in-memory DuckDB database and runs the same ``deliver`` there: the conversions that have no
final ledger row, their content lines and their ledger rows. Every ledger write is made in PostgreSQL as it is made
in the copy (``ledger.LEDGER_MIRROR``), so the ledger in PostgreSQL is the record, batch by batch, as on DuckDB:
nothing is lost and nothing is sent twice. The copy grows with what is pending, not with the history.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pandas as pd
from psycopg2.extras import execute_values

from ingestion.postgres_session import copy_to_duckdb
from reverse_etl.candidates import CONTENTS, CONVERSIONS
from reverse_etl.deliver import deliver
from reverse_etl.ledger import COLUMNS, DDL, FINAL_STATUSES, LEDGER_MIRROR, SCHEMA, TABLE, ensure_ledger
from reverse_etl.sending import DeliveryResult
from reverse_etl.settings import DeliverySettings


def ensure_postgres_ledger(pg) -> None:
    with pg.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('ttattr.ledger.ddl'))")
        cur.execute(DDL)
    pg.commit()


PENDING = (
    f"""not exists (select 1 from {TABLE} as l where l.event_id = t.event_id and l.status in {FINAL_STATUSES!r})"""
)


def _python(value):
    """A DataFrame cell as the Python value psycopg2 adapts (numpy and pandas scalars are not)."""
    if value is None or value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def _write_to_postgres(pg):
    def write(frame: pd.DataFrame) -> None:
        rows = [tuple(_python(v) for v in row) for row in frame[COLUMNS].itertuples(index=False, name=None)]
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "event_id")
        with pg.cursor() as cur:
            execute_values(
                cur,
                f"insert into {TABLE} ({', '.join(COLUMNS)}) values %s on conflict (event_id) do update set {updates}",
                rows,
                page_size=1000,
            )
        pg.commit()

    return write


def redact_client_context(pg, before: datetime) -> int:
    """ledger.redact_client_context in PostgreSQL (the copy holds only pending events; settled ones are here)."""
    with pg.cursor() as cur:
        cur.execute(
            f"""
            update {TABLE}
            set payload = (payload::jsonb #- '{{user,ip}}' #- '{{user,user_agent}}')::text
            where status in {FINAL_STATUSES!r} and coalesce(last_attempt_at, recorded_at) < %s
              and payload is not null and (payload::jsonb -> 'user') ?| array['ip', 'user_agent']
            """,
            [before],
        )
        n = cur.rowcount
    pg.commit()
    return n


@contextmanager
def pending_copy(pg) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB database holding what a delivery can act on: the conversions without a final ledger row,
    their content lines, their ledger rows (and the failure reviews' table, empty). Raises LookupError before the
    first dbt build."""
    ensure_postgres_ledger(pg)
    with tempfile.TemporaryDirectory(prefix="tiktok-delivery-") as scratch, duckdb.connect() as mem:
        ensure_ledger(mem)
        copy_to_duckdb(pg, mem, CONVERSIONS, PENDING, Path(scratch))
        copy_to_duckdb(pg, mem, CONTENTS, PENDING, Path(scratch))
        copy_to_duckdb(pg, mem, TABLE, f"t.status not in {FINAL_STATUSES!r}", Path(scratch))
        copy_to_duckdb(pg, mem, f"{SCHEMA}.tiktok_failure_reviews", "false", Path(scratch))
        pg.commit()
        yield mem


def deliver_postgres(
    pg,
    settings: DeliverySettings,
    transport: httpx.AsyncBaseTransport | None = None,
    log=None,
) -> DeliveryResult:
    """One delivery run over the PostgreSQL warehouse ``pg`` (a psycopg2 connection)."""
    with pending_copy(pg) as mem:
        token = LEDGER_MIRROR.set(_write_to_postgres(pg))
        try:
            result = deliver(mem, settings, transport, log)
        finally:
            LEDGER_MIRROR.reset(token)
    result.redacted = redact_client_context(
        pg, datetime.now(UTC).replace(tzinfo=None) - timedelta(days=settings.context_retention_days)
    )
    return result
