"""Benchmark: the tracking collector's throughput, durable before every 2xx: events per second through
``/v1/batch`` (browser-sized page events, 100 per request) and single-event requests per second through
``/v1/track``, against a naive collector (one fsynced file per request) measured in the same run.

Goal (issue 4): at least 20,000 events per second in batches on 2 cores. Run with ``make bench`` or
``python -m bench.collector``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from bench.http_load import build_request, cores, measure_server
from ingestion.landing import list_landing_files

KEY = "wk_bench"


def page_event(i: int) -> dict:
    """A page view as the tracker sends it (about 900 bytes)."""
    return {
        "type": "page",
        "messageId": f"bench-{i:09d}",
        "timestamp": "2026-11-20T10:15:00.123Z",
        "anonymousId": f"7d1e{i % 50000:08d}-5b1c-4a7e-9f0a-1c2d3e4f5a6b",
        "name": "Summer sale",
        "properties": {},
        "context": {
            "library": {"name": "ttattr.js", "version": "1.0.0"},
            "page": {
                "url": f"https://shop.example/products/{i % 500}?ttclid=E.C.P.{i:012d}&utm_source=tiktok"
                "&utm_medium=paid&utm_campaign=bf_sale&utm_content=ad_42",
                "path": f"/products/{i % 500}",
                "referrer": "https://www.tiktok.com/",
                "title": "Summer sale",
            },
            "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "locale": "en-US",
            "timezone": "America/New_York",
            "screen": {"width": 390, "height": 844},
            "cookies": {"_ttp": "2F7hXm3pQk9aB1cD4eF6gH8iJ0k", "_ga": "GA1.1.123456789.1700000000"},
            "campaign": {"source": "tiktok", "medium": "paid", "name": "bf_sale", "content": "ad_42"},
            "attribution": {"clickIds": {"ttclid": f"E.C.P.{i:012d}"}, "landedAt": "2026-11-20T10:14:58.000Z"},
        },
    }


def batch_requests(n_events: int, per_batch: int, port: int) -> list[bytes]:
    out = []
    for start in range(0, n_events, per_batch):
        body = json.dumps(
            {
                "batch": [page_event(i) for i in range(start, min(n_events, start + per_batch))],
                "sentAt": "2026-11-20T10:15:01.000Z",
                "writeKey": KEY,
            }
        ).encode()
        out.append(build_request("POST", "/v1/batch", f"127.0.0.1:{port}", body, {"Content-Type": "text/plain"}))
    return out


def single_requests(n: int, port: int) -> list[bytes]:
    out = []
    for i in range(n):
        e = page_event(i) | {"type": "track", "event": "Add to cart", "writeKey": KEY}
        out.append(
            build_request(
                "POST", "/v1/track", f"127.0.0.1:{port}", json.dumps(e).encode(), {"Content-Type": "application/json"}
            )
        )
    return out


def stored_lines(landing: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in list_landing_files(landing, "tracking"))


def run(app: str, requests, connections: int, workers: int):
    module = (
        ["-m", "ingestion.collector"]
        if app == "collector"
        else [
            "-m",
            "uvicorn",
            "--factory",
            "bench.naive_collector:create_app",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    )
    return measure_server(
        lambda port: [sys.executable, *module, "--port", str(port), "--workers", str(workers)],
        # throughput from one load generator's address: the per-address limit off
        lambda landing: {
            "COLLECTOR_WRITE_KEYS": KEY,
            "LANDING_DIR": str(landing),
            "COLLECTOR_RATE_PER_SECOND": "0",
            "COLLECTOR_KEY_RATE_PER_SECOND": "0",
        },
        requests,
        connections,
        warmup=20,
        stored=stored_lines,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--per-batch", type=int, default=100)
    ap.add_argument("--singles", type=int, default=20_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    print(
        f"# tracking collector on {cores()} cores ({platform.processor() or platform.machine()}), "
        f"{args.workers} worker process(es), {args.connections} connections, closed loop, durable before 2xx"
    )
    print(f"page event: {len(json.dumps(page_event(0))):,} bytes; {args.per_batch} per batch")
    warm = 20 * args.per_batch
    t0 = time.perf_counter()
    naive, naive_stored = run(
        "naive",
        lambda port: batch_requests(warm + args.events // 4, args.per_batch, port),
        args.connections,
        args.workers,
    )
    ours, stored = run(
        "collector",
        lambda port: batch_requests(warm + args.events, args.per_batch, port),
        args.connections,
        args.workers,
    )
    naive_eps = naive.requests * args.per_batch / naive.seconds
    ours_eps = ours.requests * args.per_batch / ours.seconds
    print(f"naive batches (one fsynced file per request): {naive_eps:,.0f} events/s; {naive.summary()}")
    print(f"collector batches (group commit):             {ours_eps:,.0f} events/s; {ours.summary()}")
    single, single_stored = run(
        "collector", lambda port: single_requests(200 + args.singles, port), args.connections * 2, args.workers
    )
    print(f"collector single events (/v1/track):          {single.per_second:,.0f} requests/s; {single.summary()}")
    if stored < warm + args.events or single_stored < 200 + args.singles:
        print(f"DURABILITY FAILURE: stored {stored} and {single_stored}")
        return 1
    print(
        f"ratio over naive: {ours_eps / naive_eps:.1f}x; goal >= 20,000 events/s in batches: "
        f"{'met' if ours_eps >= 20000 else 'NOT met'} ({time.perf_counter() - t0:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
