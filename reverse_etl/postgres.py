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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pandas as pd
from psycopg2.extras import execute_values

from reverse_etl.candidates import CONTENTS, CONVERSIONS
from reverse_etl.deliver import deliver
from reverse_etl.ledger import COLUMNS, DDL, FINAL_STATUSES, LEDGER_MIRROR, SCHEMA, TABLE, ensure_ledger
from reverse_etl.sending import DeliveryResult
from reverse_etl.settings import DeliverySettings

DUCKDB_TYPES = {
    "text": "varchar",
    "character varying": "varchar",
    "jsonb": "varchar",
    "boolean": "boolean",
    "bigint": "bigint",
    "integer": "integer",
    "double precision": "double",
    "timestamp without time zone": "timestamp",
    "date": "date",
}


def ensure_postgres_ledger(pg) -> None:
    with pg.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('ttattr.ledger.ddl'))")
        cur.execute(DDL)
    pg.commit()


def _columns(pg, relation: str) -> list[tuple[str, str]]:
    schema, table = relation.split(".")
    with pg.cursor() as cur:
        cur.execute(
            """select column_name, data_type, numeric_precision, numeric_scale from information_schema.columns
               where table_schema = %s and table_name = %s order by ordinal_position""",
            [schema, table],
        )
        rows = cur.fetchall()
    if not rows:
        raise LookupError(f"{relation} is not in the PostgreSQL warehouse: run the dbt build first")
    return [
        (name, f"decimal({precision or 38}, {scale or 0})" if kind == "numeric" else DUCKDB_TYPES.get(kind, "varchar"))
        for name, kind, precision, scale in rows
    ]


def _copy_out(pg, mem, relation: str, where: str, scratch: Path) -> None:
    """The rows of a PostgreSQL relation (``where``: a condition on them, alias ``t``) into a DuckDB table of the
    same name and column types (one the copy has already, such as the ledger with its key, is filled), through
    CSV."""
    columns = _columns(pg, relation)
    schema = relation.split(".")[0]
    mem.execute(f"create schema if not exists {schema}")
    mem.execute(f"create table if not exists {relation} ({', '.join(f'{n} {t}' for n, t in columns)})")
    select = ", ".join(f"t.{n}::text" if t == "boolean" else f"t.{n}" for n, t in columns)
    path = scratch / f"{relation}.csv"
    with open(path, "w", encoding="utf-8") as f, pg.cursor() as cur:
        cur.copy_expert(f"copy (select {select} from {relation} as t where {where}) to stdout with (format csv)", f)
    if path.stat().st_size:  # (DuckDB cannot read the dialect of an empty file)
        mem.execute(
            f"insert into {relation} select * from read_csv(?, header = false, allow_quoted_nulls = false, "
            "delim = ',', quote = '\"', escape = '\"', "
            f"columns = {{{', '.join(repr(n) + ': ' + repr(t) for n, t in columns)}}})",
            [str(path)],
        )
    path.unlink()


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


def deliver_postgres(
    pg,
    settings: DeliverySettings,
    transport: httpx.AsyncBaseTransport | None = None,
    log=None,
) -> DeliveryResult:
    """One delivery run over the PostgreSQL warehouse ``pg`` (a psycopg2 connection)."""
    ensure_postgres_ledger(pg)
    with tempfile.TemporaryDirectory(prefix="tiktok-delivery-") as scratch, duckdb.connect() as mem:
        ensure_ledger(mem)
        _copy_out(pg, mem, CONVERSIONS, PENDING, Path(scratch))
        _copy_out(pg, mem, CONTENTS, PENDING, Path(scratch))
        _copy_out(pg, mem, TABLE, f"t.status not in {FINAL_STATUSES!r}", Path(scratch))
        _copy_out(pg, mem, f"{SCHEMA}.tiktok_failure_reviews", "false", Path(scratch))
        pg.commit()
        token = LEDGER_MIRROR.set(_write_to_postgres(pg))
        try:
            result = deliver(mem, settings, transport, log)
        finally:
            LEDGER_MIRROR.reset(token)
    result.redacted = redact_client_context(
        pg, datetime.now(UTC).replace(tzinfo=None) - timedelta(days=settings.context_retention_days)
    )
    return result
