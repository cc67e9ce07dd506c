"""`make demo`: simulate a world ending today, run the whole pipeline through Dagster, print what it found.

By default the TikTok delivery goes to the fake Events API (``fakes.tiktok``) started on 127.0.0.1 for the
demo, so the report can show what "TikTok" accepted; ``--tiktok dry-run`` records payloads without sending. The
ad spend comes from the fake Marketing API report (``fakes.tiktok_reporting``) serving the simulated ad account;
``--tiktok-ads none`` leaves it out.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta
from pathlib import Path

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
    args = ap.parse_args(argv)
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
        warehouse_resource = WarehouseResource(path=str(warehouse))
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
        print(build_report(warehouse, summary["truth_path"]))
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
