"""`make demo`: simulate a world ending today, run the whole pipeline through Dagster, print what it found.

By default the TikTok delivery goes to the fake Events API (``fakes.tiktok``) started on 127.0.0.1 for the
demo, so the report can show what "TikTok" accepted; ``--tiktok dry-run`` records payloads without sending. The
ad spend comes from the fake Marketing API report (``fakes.tiktok_reporting``) serving the simulated ad account;
``--tiktok-ads none`` leaves it out.

``--warehouse postgres`` (`make demo DEMO_WAREHOUSE=postgres`) runs the same pipeline on PostgreSQL: on the empty
database WAREHOUSE_URL names, or, without it, on a throwaway server started from the installed PostgreSQL binaries
as the tests start one (gone when the demo ends). The report is the same; it reads the analysts' copy published
from PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

from ingestion.config import postgres_warehouse
from simulator.cli import write_world
from simulator.world import WorldConfig

FAKE_TOKEN = "demo-token"
FAKE_PIXEL = "DEMOPIXEL"
FAKE_MARKETING_TOKEN = "demo-marketing-token"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulator.demo", description=__doc__)
    ap.add_argument("--dir", default="./data/demo", help="where the demo's landing zone and warehouse go")
    ap.add_argument("--visitors", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tiktok", choices=["fake", "dry-run"], default="fake")
    ap.add_argument("--tiktok-ads", choices=["fake", "none"], default="fake", help="where the ad spend comes from")
    ap.add_argument(
        "--warehouse",
        choices=["duckdb", "postgres"],
        default="postgres" if postgres_warehouse() is not None else "duckdb",
        help="the DuckDB file in --dir, or PostgreSQL: WAREHOUSE_URL's (empty) database, else a throwaway server",
    )
    args = ap.parse_args(argv)
    with ExitStack() as stack:
        return _demo(args, stack)


def _postgres_warehouse(stack: ExitStack):
    """The demo's PostgreSQL database, and its URL setting for the Dagster resource (an EnvVar for the user's)."""
    import dagster as dg

    from ingestion.config import PostgresWarehouse
    from simulator.postgres_server import binaries, postgres_server

    database = postgres_warehouse()
    if database is not None:
        with database.connection() as pg, pg.cursor() as cur:
            cur.execute("select count(*) from information_schema.schemata where schema_name in ('raw', 'marts')")
            if cur.fetchall()[0][0]:
                raise SystemExit(
                    f"WAREHOUSE_URL names {database.dbname}, which already holds a warehouse: the demo loads a "
                    "simulated world, so give it an empty database (createdb ttattr_demo) or unset WAREHOUSE_URL "
                    "for a throwaway server"
                )
        print(f"warehouse: PostgreSQL database {database.dbname} on {database.host}:{database.port} (WAREHOUSE_URL)")
        return database, dg.EnvVar("WAREHOUSE_URL")
    if binaries() is None:
        raise SystemExit(
            "--warehouse postgres without WAREHOUSE_URL starts a throwaway server, but the PostgreSQL server "
            "binaries are not installed (Debian: apt-get install postgresql-15)"
        )
    host, port, user = stack.enter_context(postgres_server())
    import psycopg2

    con = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    con.autocommit = True
    con.cursor().execute("create database ttattr_demo")
    con.close()
    database = PostgresWarehouse(host=host, port=port, user=user, password="", dbname="ttattr_demo")
    print(f"warehouse: a throwaway PostgreSQL server on {host}:{port} (database ttattr_demo, gone when the demo ends)")
    return database, database.url


def _demo(args, stack: ExitStack) -> int:
    root = Path(args.dir).resolve()
    landing, warehouse = root / "landing", root / "warehouse.duckdb"
    os.environ["LANDING_DIR"], os.environ["WAREHOUSE_PATH"] = str(landing), str(warehouse)

    # imported after the environment names the demo's data, which the code location reads at import
    from fakes.tiktok import FakeTikTok
    from fakes.tiktok_reporting import FakeTikTokReporting
    from orchestration.definitions import build_defs
    from orchestration.resources import (
        LandingZoneResource,
        StripeResource,
        TikTokAdsResource,
        TikTokResource,
        WarehouseResource,
    )
    from orchestration.run import run_pipeline, run_tiktok_spend
    from simulator.ad_account import ADVERTISER_ID
    from simulator.report import build_report
    from simulator.world import WORLD_DAYS

    # the database first: one that already holds a warehouse is refused before anything is simulated
    database, url = _postgres_warehouse(stack) if args.warehouse == "postgres" else (None, None)
    summary = write_world(
        WorldConfig(visitors=args.visitors, seed=args.seed, end_date=date.today()), landing, replace=True
    )
    print(
        f"simulated {summary['visitors']} visitors ending today: {summary['tracking_events']:,} tracking events, "
        f"{summary['stripe_events']:,} Stripe events, {summary['purchases']:,} purchases"
    )
    fake = FakeTikTok(access_tokens=[FAKE_TOKEN], pixel_codes=[FAKE_PIXEL]).start() if args.tiktok == "fake" else None
    reporting = None
    if args.tiktok_ads == "fake":
        reporting = FakeTikTokReporting.from_file(summary["ad_account_path"], access_tokens=[FAKE_MARKETING_TOKEN])
        reporting.start()
    try:
        if fake:
            fake.inject(latency_ms=20)
            tiktok = TikTokResource(access_token=FAKE_TOKEN, pixel_code=FAKE_PIXEL, api_base_url=fake.url)
            print(f"TikTok deliveries go to the fake Events API at {fake.url}")
        else:
            tiktok = TikTokResource()
        warehouse_resource = WarehouseResource(path=str(warehouse), url=url)
        tiktok_ads = TikTokAdsResource()
        if reporting:
            tiktok_ads = TikTokAdsResource(
                marketing_access_token=FAKE_MARKETING_TOKEN,
                advertiser_ids=[ADVERTISER_ID],
                marketing_api_base_url=reporting.url,
                reporting_requests_per_second=50.0,
            )
            print(f"TikTok ad spend comes from the fake Marketing API report at {reporting.url}")
        defs = build_defs(
            {
                "warehouse": warehouse_resource,
                "landing_zone": LandingZoneResource(path=str(landing)),
                "tiktok": tiktok,
                "stripe": StripeResource(),
                "tiktok_ads": tiktok_ads,
            }
        )
        if reporting:
            first_day = (date.today() - timedelta(days=WORLD_DAYS)).isoformat()
            print(f"pulling TikTok's ad report for {first_day} to today (one run over those partitions) ...")
            pulled = run_tiktok_spend(first_day, date.today().isoformat(), defs=defs, log_level="WARNING")
            if not pulled.success:
                print(f"the spend run {pulled.run_id} failed; see the errors above", file=sys.stderr)
                return 1
        print("running the pipeline through Dagster ...", flush=True)
        result = run_pipeline(defs=defs, log_level="WARNING")
        if not result.success:
            print(f"the pipeline run {result.run_id} failed; see the errors above", file=sys.stderr)
            return 1
        print(f"run {result.run_id} succeeded")
        read = warehouse
        if args.warehouse == "postgres":
            # the report's queries are DuckDB's: over a copy of the database (the analysts' copy and the
            # intermediate models the accuracy check reads), from one snapshot
            from orchestration.publish import PUBLISHED_SCHEMAS, publish_from_postgres

            read = root / "postgres_snapshot.duckdb"
            with database.connection() as pg:
                publish_from_postgres(pg, read, (*PUBLISHED_SCHEMAS, "intermediate"))
        print(build_report(read, summary["truth_path"]))
        if fake:
            s = fake.stats()
            print(
                f"\nWhat the (fake) TikTok Events API accepted: {s['accepted_unique']:,} events in "
                f"{s['requests']:,} request(s) ({s['duplicates']} duplicate deliveries, deduplicated by event_id)"
            )
        report = warehouse_resource.resolved_report_path
        if report.exists():
            print(f"\nThe marketing report (open it in a browser): {report}")
    finally:
        if fake:
            fake.stop()
        if reporting:
            reporting.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
