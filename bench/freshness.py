"""Benchmark: seconds from a purchase's webhook to TikTok, with the product running by itself.

A history of about N tracking events (and its Stripe events) is simulated and built once (`make run`'s full run).
Then the product runs as a deployment runs it (simulator/live.py): the collector, the Stripe webhook receiver and
the Dagster daemon with its sensors, on the default settings, delivering to the fake TikTok Events API. Shoppers
arrive at a steady rate: each one's browser messages (a TikTok click, a lead form) go to the collector, then their
Stripe events, signed, to the receiver. For each purchase: the seconds from the receiver's 2xx for its last webhook
to the fake TikTok accepting its event, as p50 / p95 / max, split (medians) into the wait until the load of the run
that carried it began (the segment's publication, the sensor's tick, the run's queue and launch, an earlier run
holding the warehouse), its load and dbt build, and its delivery. Baseline in the same run: the history's
no-new-data run (`make run` with nothing new), the fixed cost every run pays.

Goal (issue 22): p95 at most 30 s over a history of 1M tracking events. Run with `make bench-freshness` or
`python -m bench.freshness --tracking-events 1000000`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
import httpx

from bench.http_load import cores
from bench.pipeline import count_lines, pipeline_env, prepare_manifest, run_pipeline, visitors_for
from fakes.tiktok import FakeTikTok
from simulator.cli import write_world
from simulator.live import LiveShop, running_product
from simulator.world import WorldConfig

TOKEN, PIXEL = "bench-token", "BENCHPIXEL"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ingest_runs(dagster_home: Path) -> list[dict]:
    """Every run the landing sensor started: when it was created, when its first load step and its delivery step
    started, when the delivery ended, and when the run ended."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    runs = []
    with dg.DagsterInstance.get() as instance:
        for record in instance.get_run_records(dg.RunsFilter(job_name="ingest")):
            steps: dict[str, dict[str, float]] = {}
            for entry in instance.all_logs(record.dagster_run.run_id):
                event = entry.dagster_event
                if event is not None and event.step_key and event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                    steps.setdefault(event.step_key, {})[event.event_type_value] = entry.timestamp
            loads = [v["STEP_START"] for k, v in steps.items() if k.startswith("raw__") and "STEP_START" in v]
            delivery = steps.get("reverse_etl__tiktok_deliveries", {})
            runs.append(
                {
                    "created": record.create_timestamp.timestamp(),
                    "load": min(loads) if loads else None,
                    "delivery": delivery.get("STEP_START"),
                    "delivered": delivery.get("STEP_SUCCESS"),
                    "ended": record.end_time,
                    "started": record.start_time,
                }
            )
    return sorted(runs, key=lambda r: r["created"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracking-events", type=int, default=1_000_000, help="the history's size")
    ap.add_argument("--purchases", type=int, default=30, help="shoppers sent during the measurement")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between two shoppers")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--workdir", help="keep the data here (default: a temporary folder, removed afterwards)")
    args = ap.parse_args(argv)
    work = (Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-freshness-"))).resolve()
    print(f"# freshness on {cores()} cores; workdir {work}")
    fake = FakeTikTok(access_tokens=[TOKEN], pixel_codes=[PIXEL]).start()
    fake.inject(latency_ms=20)
    # the layout simulator/live.py's running_product uses: work/landing, work/warehouse.duckdb, work/dagster_home
    env = {
        **pipeline_env(work),
        "TIKTOK_ACCESS_TOKEN": TOKEN,
        "TIKTOK_PIXEL_CODE": PIXEL,
        "TIKTOK_API_BASE_URL": fake.url,
    }
    try:
        t0 = time.perf_counter()
        write_world(
            WorldConfig(visitors=visitors_for(args.tracking_events), seed=args.seed),
            work / "landing",
            work / "ground_truth.jsonl",
        )
        lines = count_lines(work / "landing")
        print(
            f"history: {lines['tracking']:,} tracking events, {lines['stripe_events']:,} Stripe events "
            f"({time.perf_counter() - t0:.0f} s to simulate)"
        )
        (work / "dagster_home").mkdir(parents=True, exist_ok=True)
        prepare_manifest(env)
        full, _, _ = run_pipeline(env)
        fixed, _, _ = run_pipeline(env)
        print(f"history built: full run {full:.1f} s; no-new-data run {fixed:.1f} s (the fixed cost, baseline)")

        shop = LiveShop(seed=args.seed + 7)
        sent: list[tuple[float, list[str]]] = []
        with (
            running_product(work, tiktok_url=fake.url, access_token=TOKEN, pixel_code=PIXEL) as product,
            httpx.Client(timeout=30) as client,
        ):
            time.sleep(15)  # the daemon's first ticks: the history is loaded already, nothing runs
            start = time.time()
            for i in range(args.purchases):
                time.sleep(max(0.0, start + i * args.every - time.time()))
                shopper = shop.shopper()
                sent.append((product.send(shopper, client), shopper.purchase_ids))
            deadline = time.time() + 600
            while time.time() < deadline and not all(e in fake.accepted_at for _, ids in sent for e in ids):
                time.sleep(0.5)
        runs = ingest_runs(work / "dagster_home")

        latencies, before_load, load_dbt, delivery, missing = [], [], [], [], 0
        for acked, ids in sent:
            arrived = [fake.accepted_at.get(e) for e in ids]
            if not all(arrived):
                missing += 1
                continue
            latencies.append(max(arrived) - acked)
            # the run whose delivery sent it
            run = next(
                (r for r in runs if r["delivered"] and (r["delivery"] or 0) <= max(arrived) <= r["delivered"]),
                None,
            )
            if run and run["load"]:
                before_load.append(run["load"] - acked)
                load_dbt.append(run["delivery"] - run["load"])
                delivery.append(max(arrived) - run["delivery"])
        if not latencies:
            raise SystemExit(f"no purchase reached TikTok; see {work / 'logs'}")
        figures = {
            "cores": cores(),
            "tracking_events": lines["tracking"],
            "purchases": len(sent),
            "every_s": args.every,
            "arrived": len(latencies),
            "missing": missing,
            "p50_s": round(percentile(latencies, 0.5), 1),
            "p95_s": round(percentile(latencies, 0.95), 1),
            "max_s": round(max(latencies), 1),
            "fixed_run_s": round(fixed, 1),
            "runs": len(runs),
        }
        print(
            f"webhook 2xx -> TikTok: p50 {figures['p50_s']} s, p95 {figures['p95_s']} s, max {figures['max_s']} s "
            f"({len(latencies)} of {len(sent)} purchases arrived; {len(runs)} runs)"
        )
        if before_load:
            print(
                "median parts: until its run's load began (publication, sensor tick, queue, launch, an earlier run "
                f"holding the warehouse) {statistics.median(before_load):.1f} s; load and dbt "
                f"{statistics.median(load_dbt):.1f} s; delivery {statistics.median(delivery):.1f} s"
            )
        durations = [r["ended"] - r["started"] for r in runs if r["started"] and r["ended"]]
        if durations:
            print(f"runs: median {statistics.median(durations):.1f} s, max {max(durations):.1f} s wall each")
        print(json.dumps(figures))
        print(f"goal: p95 <= 30 s: {'met' if figures['p95_s'] <= 30 else 'NOT met'}")
    finally:
        fake.stop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
