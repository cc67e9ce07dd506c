"""`make demo`: simulate a world ending today, run the whole pipeline through Dagster, print what it found.

By default the TikTok delivery goes to the fake Events API (``fakes.tiktok``) started on 127.0.0.1 for the
demo, so the report can show what "TikTok" accepted; ``--tiktok dry-run`` records payloads without sending.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from simulator.cli import write_world
from simulator.world import WorldConfig

FAKE_TOKEN = "demo-token"
FAKE_PIXEL = "DEMOPIXEL"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulator.demo", description=__doc__)
    ap.add_argument("--dir", default="./data/demo", help="where the demo's landing zone and warehouse go")
    ap.add_argument("--visitors", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tiktok", choices=["fake", "dry-run"], default="fake")
    args = ap.parse_args(argv)
    root = Path(args.dir).resolve()
    landing, warehouse = root / "landing", root / "warehouse.duckdb"
    os.environ["LANDING_DIR"], os.environ["WAREHOUSE_PATH"] = str(landing), str(warehouse)

    # imported after the environment names the demo's data, which the code location reads at import
    from fakes.tiktok import FakeTikTok
    from orchestration.definitions import build_defs
    from orchestration.resources import (
        LandingZoneResource,
        StripeResource,
        TikTokAdsResource,
        TikTokResource,
        WarehouseResource,
    )
    from orchestration.run import run_pipeline
    from simulator.report import build_report

    summary = write_world(
        WorldConfig(visitors=args.visitors, seed=args.seed, end_date=date.today()), landing, replace=True
    )
    print(
        f"simulated {summary['visitors']} visitors ending today: {summary['tracking_events']:,} tracking events, "
        f"{summary['stripe_events']:,} Stripe events, {summary['purchases']:,} purchases"
    )
    fake = FakeTikTok(access_tokens=[FAKE_TOKEN], pixel_codes=[FAKE_PIXEL]).start() if args.tiktok == "fake" else None
    try:
        if fake:
            fake.inject(latency_ms=20)
            tiktok = TikTokResource(access_token=FAKE_TOKEN, pixel_code=FAKE_PIXEL, api_base_url=fake.url)
            print(f"TikTok deliveries go to the fake Events API at {fake.url}")
        else:
            tiktok = TikTokResource()
        defs = build_defs(
            {
                "warehouse": WarehouseResource(path=str(warehouse)),
                "landing_zone": LandingZoneResource(path=str(landing)),
                "tiktok": tiktok,
                "stripe": StripeResource(),
                "tiktok_ads": TikTokAdsResource(),
            }
        )
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
    finally:
        if fake:
            fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
