"""Erasing a person on request (GDPR art. 17): `python -m orchestration.forget --email … [--phone …]
[--stripe-customer cus_…]`, or the Dagster job `forget`, which erases every queued request.

A request is queued in the warehouse (monitoring.erasure_requests), never in a Dagster run's config: what is in a
run's config stays in Dagster's storage for good. The job then, for each request:
- finds the person: the stitched customers holding one of the identifiers (int_identity_components), all of their
  browsers, user ids, emails, phones, Stripe customers and purchases, and the tracking messages the models matched to
  their emails and phones; with no models built yet, the identifiers as given;
- erases them from the landing files, the raw tables and the quarantine (ingestion/forget.py), the delivery
  ledger's payloads (reverse_etl/ledger.py: the rows stay, so nothing is sent twice), and the rows of the
  attribution history snapshot;
- drops every table dbt built (staging, intermediate, marts; not the snapshot) and forgets the build state, so no
  copy survives even if the rebuild fails, and the next build (the CLI runs it at once) is a full one;
- records what was erased in monitoring.erasures: when, the SHA-256 of each identifier asked for (a request can be
  proven done without keeping who asked), and how much went from where; the request itself is deleted.

The statements are written once for both warehouses: ``con`` is a DuckDB connection or, with WAREHOUSE_URL, a
PostgreSQL session (ingestion/postgres_session.py).

Not reached from here: TikTok (events already sent stay there; the Events API has no deletion), Stripe (erase the
customer there first, or a Stripe pull or backfill brings the objects back), copies outside the product (backups,
a BI tool's extracts), and free space: in the DuckDB file CHECKPOINT rewrites the blocks in use (the file is
owner-only); on PostgreSQL VACUUM makes the deleted rows' space reusable, but their bytes stay in the data files and
the write-ahead log (and its archive, and replicas' copies) until overwritten or expired.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import uuid
from pathlib import Path

import duckdb

from ingestion.forget import Identifiers, erase
from ingestion.postgres_session import PostgresSession
from reverse_etl.hashing import normalise_email, normalise_phone
from reverse_etl.ledger import erase_events

DERIVED_SCHEMAS = ("staging", "intermediate", "marts")
# what VACUUM is asked to clean on PostgreSQL after an erasure (the tables that deleted or rewrote the person's rows)
ERASED_TABLES = (
    "raw.stripe_events", "raw.tracking_events", "raw.quarantine", "reverse_etl.tiktok_deliveries",
    "monitoring.customer_ids", "monitoring.customer_id_changes", "marts.attributed_purchases_history",
)  # fmt: skip
# snapshots keep history no rebuild recreates: their rows of the person are deleted, the tables kept
SNAPSHOTS = {("marts", "attributed_purchases_history"): "purchase_id"}

DDL = """
create schema if not exists monitoring;
create table if not exists monitoring.erasure_requests (
    request_id varchar primary key, requested_at timestamp not null,
    emails varchar[] not null, phones varchar[] not null, stripe_customers varchar[] not null
);
create table if not exists monitoring.erasures (
    request_id varchar primary key, requested_at timestamp not null, erased_at timestamp not null,
    identifiers_sha256 varchar[] not null, customers integer not null, stripe_objects integer not null,
    landing_files bigint not null, landing_lines bigint not null, raw_stripe_events bigint not null,
    raw_tracking_events bigint not null, quarantined_lines bigint not null, ledger_events bigint not null,
    snapshot_rows bigint not null, tables_dropped integer not null
);
"""


def request_erasure(
    con: duckdb.DuckDBPyConnection, *, emails=(), phones=(), stripe_customers=(), phone_region: str = "US"
) -> str:
    """Queue an erasure of the person holding any of these identifiers. Returns the request id."""
    norm_emails = sorted({e for e in (normalise_email(v) for v in emails) if e})
    norm_phones = sorted({p for p in (normalise_phone(v, phone_region) for v in phones) if p})
    customers = sorted({c.strip() for c in stripe_customers if c and c.strip()})
    refused = [v for v in emails if not normalise_email(v)] + [
        v for v in phones if not normalise_phone(v, phone_region)
    ]
    if refused:
        raise ValueError(f"not an email or phone number: {len(refused)} value(s)")
    if not (norm_emails or norm_phones or customers):
        raise ValueError("name the person by at least one email, phone or Stripe customer id")
    con.execute(DDL)
    request_id = uuid.uuid4().hex
    con.execute(
        "insert into monitoring.erasure_requests values (?, now(), ?, ?, ?)",
        [request_id, norm_emails, norm_phones, customers],
    )
    return request_id


def _exists(con, schema: str, name: str) -> bool:
    return bool(
        con.execute(
            "select 1 from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
        ).fetchall()
    )


def resolve(
    con: duckdb.DuckDBPyConnection, emails: list[str], phones: list[str], stripe_customers: list[str]
) -> tuple[Identifiers, int]:
    """The person's identifiers, through the identity graph when it is built; and how many stitched customers."""
    seeds = (
        [f"email:{e}" for e in emails]
        + [f"phone:{p}" for p in phones]
        + [f"stripe_customer:{c}" for c in stripe_customers]
    )
    nodes = {tuple(n.split(":", 1)) for n in seeds}
    customers = 0
    if _exists(con, "intermediate", "int_identity_components"):
        found = con.execute(
            """
            select node_type, node_value from intermediate.int_identity_components
            where customer_id in (select customer_id from intermediate.int_identity_components
                                  where node = any(?::varchar[]))""",
            [seeds],
        ).fetchall()
        nodes |= set(found)
        customers = con.execute(
            "select count(distinct customer_id) from intermediate.int_identity_components "
            "where node = any(?::varchar[])",
            [seeds],
        ).fetchall()[0][0]

    def of(kind: str) -> frozenset[str]:
        return frozenset(v for t, v in nodes if t == kind)

    emails_all, phones_all = of("email"), of("phone")
    message_ids: frozenset[str] = frozenset()
    if _exists(con, "staging", "stg_tracking__events") and (emails_all or phones_all):
        message_ids = frozenset(
            r[0]
            for r in con.execute(
                "select message_id from staging.stg_tracking__events "
                "where email_normalised = any(?::varchar[]) or phone_normalised = any(?::varchar[])",
                [sorted(emails_all), sorted(phones_all)],
            ).fetchall()
        )
    return Identifiers(
        browsers=of("browser"),
        users=of("user"),
        emails=emails_all,
        phones=phones_all,
        stripe_ids=of("stripe_customer") | of("purchase"),
        message_ids=message_ids,
    ), customers


def forget_customer_ids(con, ids: Identifiers, stripe_ids: frozenset[str] = frozenset()) -> None:
    """The stitch's registry of customer ids (kept across rebuilds, so not dropped with the models) names the
    person's identifiers: their rows go, and so do the merges and splits of their ids."""
    if not _exists(con, "monitoring", "customer_ids"):
        return
    values = sorted(ids.browsers | ids.users | ids.emails | ids.phones | ids.stripe_ids | stripe_ids)
    customers = [
        r[0]
        for r in con.execute(
            "select distinct customer_id from monitoring.customer_ids "
            "where substr(node, strpos(node, ':') + 1) = any(?::varchar[])",
            [values],
        ).fetchall()
    ]
    if _exists(con, "monitoring", "customer_id_changes"):
        con.execute(
            "delete from monitoring.customer_id_changes "
            "where old_customer_id = any(?::varchar[]) or customer_id = any(?::varchar[])",
            [customers, customers],
        )
    con.execute("delete from monitoring.customer_ids where customer_id = any(?::varchar[])", [customers])


def _drop_derived_tables(con) -> int:
    tables = [
        (s, n)
        for s, n in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and table_schema = any(?::varchar[])",
            [list(DERIVED_SCHEMAS)],
        ).fetchall()
        if (s, n) not in SNAPSHOTS
    ]
    # PostgreSQL keeps views from outliving their tables: they go too (the build creates them again); DuckDB's views
    # are left to bind again when the tables are back
    cascade = " cascade" if isinstance(con, PostgresSession) else ""
    for schema, name in tables:
        con.execute(f'drop table if exists "{schema}"."{name}"{cascade}')
    if _exists(con, "monitoring", "dbt_build_state"):
        con.execute("delete from monitoring.dbt_build_state")
    # the edges the stitch last stitched (and those deleted since) name the person too; the full build that follows
    # keeps them again
    for name in ("stitched_edges", "stitch_pending", "identity_edges_gone"):
        con.execute(f"drop table if exists monitoring.{name}")
    return len(tables)


def process_requests(con: duckdb.DuckDBPyConnection, landing_dir: Path) -> list[dict]:
    """Carry out every queued erasure request; returns their records (as in monitoring.erasures)."""
    con.execute(DDL)
    records = []
    for request_id, requested_at, emails, phones, customers in con.execute(
        "select request_id, requested_at, emails, phones, stripe_customers from monitoring.erasure_requests "
        "order by requested_at"
    ).fetchall():
        ids, stitched = resolve(con, emails, phones, customers)
        ingested = erase(con, landing_dir, ids)
        events = sorted(ingested.stripe_ids | ids.message_ids)
        ledger = erase_events(con, events)
        snapshot_rows = 0
        for (schema, name), key in SNAPSHOTS.items():
            if _exists(con, schema, name) and events:
                snapshot_rows += len(
                    con.execute(
                        f'delete from "{schema}"."{name}" where {key} = any(?::varchar[]) returning {key}', [events]
                    ).fetchall()
                )
        forget_customer_ids(con, ids, ingested.stripe_ids)
        dropped = _drop_derived_tables(con)
        record = {
            "request_id": request_id,
            "requested_at": requested_at,
            "identifiers_sha256": sorted(
                hashlib.sha256(v.encode()).hexdigest() for v in [*emails, *phones, *customers]
            ),
            "customers": stitched,
            "stripe_objects": len(ingested.stripe_ids),
            "landing_files": ingested.landing_files,
            "landing_lines": ingested.landing_lines,
            "raw_stripe_events": ingested.raw_rows.get("stripe_events", 0),
            "raw_tracking_events": ingested.raw_rows.get("tracking_events", 0),
            "quarantined_lines": ingested.quarantined_lines,
            "ledger_events": ledger,
            "snapshot_rows": snapshot_rows,
            "tables_dropped": dropped,
        }
        con.execute("begin transaction")
        con.execute(
            f"insert into monitoring.erasures ({', '.join(record)}, erased_at) "
            f"values ({', '.join('?' for _ in record)}, now())",
            list(record.values()),
        )
        con.execute("delete from monitoring.erasure_requests where request_id = ?", [request_id])
        con.execute("commit")
        _reclaim(con)
        records.append(record)
    return records


def _reclaim(con) -> None:
    """Free the space of what was erased (see the module's docstring for what stays)."""
    if not isinstance(con, PostgresSession):
        con.execute("checkpoint")
        return
    for table in ERASED_TABLES:
        schema, name = table.split(".")
        if _exists(con, schema, name):
            con.execute(f"vacuum {table}")


def main(argv: list[str] | None = None) -> int:
    from ingestion.config import owner_only_files

    owner_only_files()
    ap = argparse.ArgumentParser(
        prog="python -m orchestration.forget",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--email", action="append", default=[])
    ap.add_argument("--phone", action="append", default=[])
    ap.add_argument("--stripe-customer", action="append", default=[])
    ap.add_argument(
        "--no-rebuild", action="store_true", help="erase and drop the models, but leave the rebuild to the next run"
    )
    args = ap.parse_args(argv)

    from orchestration.definitions import defs
    from orchestration.instance import get_instance
    from orchestration.resources import TikTokResource, default_resources
    from orchestration.run import run_pipeline

    region = TikTokResource.from_env().default_phone_region
    resources = default_resources()
    with resources["warehouse"].connect() as con:
        try:
            request_id = request_erasure(
                con, emails=args.email, phones=args.phone, stripe_customers=args.stripe_customer, phone_region=region
            )
        except ValueError as e:
            print(f"forget: {e}", file=sys.stderr)
            return 2
    instance = get_instance()
    result = defs.resolve_job_def("forget").execute_in_process(
        instance=instance, raise_on_error=False, tags={"trigger": "forget"}
    )
    if not result.success:
        print(f"forget: the erasure run {result.run_id} failed; the request stays queued", file=sys.stderr)
        return 1
    with resources["warehouse"].connect(read_only=True) as con:
        result = con.execute("select * from monitoring.erasures where request_id = ?", [request_id])
        columns = [d[0] for d in result.description]
        record = result.fetchall()
    for name, value in zip(columns, record[0], strict=False):
        print(f"  {name:22s} {value}")
    if args.no_rebuild:
        print("models dropped; the next run rebuilds them in full")
        return 0
    rebuilt = run_pipeline(instance)
    print(f"models rebuilt in full: run {rebuilt.run_id} {'succeeded' if rebuilt.success else 'FAILED'}")
    return 0 if rebuilt.success else 1


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["DERIVED_SCHEMAS", "SNAPSHOTS", "process_requests", "request_erasure", "resolve"]
