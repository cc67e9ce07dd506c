"""Benchmark: TikTok delivery of N conversions to the fake Events API with a fixed latency per request,
against a naive sender (one event per request, sequential) measured in the same run on a smaller sample.

Goal (issue 6): at least 20,000 conversions per second, and at least 100 times the naive sender.
Run with `make bench` or `python -m bench.tiktok_delivery --conversions 100000 --latency-ms 50`.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
import httpx
import orjson

from reverse_etl.deliver import DeliverySettings, SendPolicy, deliver
from reverse_etl.payload import build_event
from simulator.conversions import make_conversions

TOKEN, PIXEL = "bench-token", "BENCHPIXEL"


def start_fake(latency_ms: int) -> tuple[subprocess.Popen, str]:
    """The fake in its own process, as TikTok would be: its CPU does not count against the sender's."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakes.tiktok", "--token", TOKEN, "--pixel", PIXEL, "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("the fake TikTok server did not start")
    return proc, url


def naive_send(con: duckdb.DuckDBPyConnection, url: str, n: int) -> float:
    """One event per request, one request at a time: what most senders do. Returns events per second."""
    cur = con.execute(f"select * from marts.tiktok_conversions where eligible order by event_id limit {n}")
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=False)) for r in cur.fetchall()]
    started = time.perf_counter()
    with httpx.Client(base_url=url, headers={"Access-Token": TOKEN, "Content-Type": "application/json"}) as http:
        for row in rows:
            body = {"event_source": "web", "event_source_id": PIXEL, "data": [build_event(row)]}
            reply = http.post("/open_api/v1.3/event/track/", content=orjson.dumps(body))
            assert reply.json()["code"] == 0, reply.text
    return len(rows) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tiktok_delivery", description=__doc__)
    ap.add_argument("--conversions", type=int, default=100_000)
    ap.add_argument("--naive-sample", type=int, default=200)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--requests-per-second", type=float, default=200.0)
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}")
    print(f"fake TikTok Events API in its own process, {args.latency_ms} ms latency per request")
    proc, url = start_fake(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with duckdb.connect(str(Path(tmp) / "bench.duckdb")) as con:
                now = datetime.now().replace(microsecond=0)
                make_conversions(con, args.conversions, now)
                naive_rate = naive_send(con, url, args.naive_sample)
                httpx.post(f"{url}/_fake/reset").raise_for_status()
                httpx.post(f"{url}/_fake/faults", json={"latency_ms": args.latency_ms}).raise_for_status()
                settings = DeliverySettings(
                    access_token=TOKEN,
                    pixel_code=PIXEL,
                    api_base_url=url,
                    now=now,
                    batch_size=1000,
                    concurrency=args.concurrency,
                    requests_per_second=args.requests_per_second,
                    policy=SendPolicy(max_event_age_days=7),
                )
                started = time.perf_counter()
                result = deliver(
                    con, settings, log=lambda m: print(f"  {time.perf_counter() - started:6.2f} s  {m}", flush=True)
                )
                seconds = time.perf_counter() - started
                sent = con.execute(
                    "select count(*) from reverse_etl.tiktok_deliveries where status = 'sent'"
                ).fetchall()[0][0]
        stats = httpx.get(f"{url}/_fake/stats").json()
    finally:
        proc.terminate()
        proc.wait()
    rate = sent / seconds
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"batched sender: {sent:,} conversions in {seconds:.2f} s = {rate:,.0f} conversions/s "
        f"({result.requests} requests, batches of 1000, concurrency {args.concurrency}, "
        f"cap {args.requests_per_second:g} requests/s; peak memory {peak_mib:,.0f} MiB)"
    )
    print(f"accepted at the fake: {stats['accepted_unique']:,} unique event ids, {stats['duplicates']} duplicates")
    print(
        f"naive sender (baseline, same run): {args.naive_sample} conversions one per request, sequential: "
        f"{naive_rate:,.1f} conversions/s"
    )
    ratio = rate / naive_rate
    print(
        f"ratio: {ratio:,.0f}x  (goals: >= 20,000 conversions/s: {'met' if rate >= 20_000 else 'NOT met'}; "
        f">= 100x: {'met' if ratio >= 100 else 'NOT met'})"
    )
    ok = sent == args.conversions == stats["accepted_unique"]
    if not ok:
        print("ERROR: not every conversion was accepted exactly once", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
