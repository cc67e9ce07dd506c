"""Run one TikTok delivery over the warehouse without Dagster (the Dagster asset calls the same code).

Settings come from the environment (TIKTOK_*, WAREHOUSE_PATH or WAREHOUSE_URL; see .env.example). Exit codes: 0 done,
1 stopped (permission or endpoint problem: the message says what to fix), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing

import duckdb

from ingestion import config
from ingestion.postgres_session import PostgresSession
from reverse_etl.deliver import DeliverySettings, DeliveryStopped, deliver
from reverse_etl.ledger import review_failures, unreviewed_failures


def main(argv: list[str] | None = None) -> int:
    config.owner_only_files()
    ap = argparse.ArgumentParser(prog="python -m reverse_etl", description=__doc__)
    ap.add_argument("--warehouse", default=str(config.warehouse_path()))
    ap.add_argument(
        "--review-failures",
        metavar="WHO",
        help="list the permanent failures nobody has reviewed, record them as reviewed by WHO, and exit",
    )
    ap.add_argument("--note", help="a note stored with --review-failures")
    args = ap.parse_args(argv)
    if args.review_failures:
        postgres = config.postgres_warehouse()
        with closing(
            duckdb.connect(args.warehouse) if postgres is None else PostgresSession(postgres.connect())
        ) as con:
            for code, message, events, newest in unreviewed_failures(con):
                print(f"{events:6d} x code {code}: {message} (latest {newest})")
            print(f"{review_failures(con, args.review_failures, args.note)} failed_permanent events marked reviewed")
        return 0
    try:
        settings = DeliverySettings.from_env()
    except ValueError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    log = lambda m: print(m, flush=True)  # noqa: E731
    try:
        if (postgres := config.postgres_warehouse()) is not None:
            from reverse_etl.postgres import deliver_postgres

            with postgres.connection() as pg:
                result = deliver_postgres(pg, settings, log=log)
        else:
            with duckdb.connect(args.warehouse) as con:
                result = deliver(con, settings, log=log)
    except DeliveryStopped as e:
        print(f"delivery stopped: {e}", file=sys.stderr)
        return 1
    mode = "dry run" if result.dry_run else f"{result.requests} requests"
    print(f"{mode}, {result.seconds:.1f}s: " + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
    return 0
