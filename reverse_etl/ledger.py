"""The delivery ledger: one row per TikTok event id, so nothing is lost and nothing is sent twice."""

from __future__ import annotations

import duckdb

SCHEMA = "reverse_etl"
TABLE = f"{SCHEMA}.tiktok_deliveries"
STATUSES = ("sent", "dry_run", "failed_retryable", "failed_permanent", "expired", "no_consent")

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
    payload json
);
"""


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    ensure_ledger(con)
    return dict(con.execute(f"select status, count(*) from {TABLE} group by status order by status").fetchall())
