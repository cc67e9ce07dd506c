"""Benchmark: signed Stripe webhook requests per second and latency through the receiver, durable before each 2xx,
against a naive receiver measured in the same run (``stripe.Webhook.construct_event`` and one fsynced landing
file per event: the way most tutorials store webhooks), and the Events API pull's throughput from the fake.

Goal (issue 3): at least 2,000 signed requests per second on 2 cores with p99 under 50 ms.
Run with ``make bench`` or ``python -m bench.stripe_webhooks``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import stripe

from bench.http_load import build_request, cores, measure_server
from ingestion.landing import list_landing_files

SECRET = "whsec_bench_secret"


def events(n: int) -> list[bytes]:
    """Realistic invoice.paid bodies (about 3 KB, pretty-printed as Stripe sends them)."""
    from simulator.stripe_objects import NEW_API_VERSION, event, invoice

    out = []
    now = int(time.time())
    for i in range(n):
        inv = invoice(
            in_id=f"in_bench{i:08d}",
            created=now,
            cus_id=f"cus_bench{i % 5000:06d}",
            email=f"buyer{i}@example.com",
            name="Bench Buyer",
            phone="+14155550100",
            country="US",
            amount_minor=4900,
            currency="usd",
            billing_reason="subscription_create",
            subscription_id=f"sub_bench{i:08d}",
            sub_item_id=f"si_bench{i:08d}",
            line_id=f"il_bench{i:08d}",
            price_id="price_pro",
            product_id="prod_pro",
            product_name="Pro plan",
            period_start=now,
            period_end=now + 30 * 86400,
            pi_id=f"pi_bench{i:08d}",
            charge_id=f"ch_bench{i:08d}",
            api_version=NEW_API_VERSION,
        )
        out.append(json.dumps(event(f"evt_bench{i:08d}", "invoice.paid", now, inv, NEW_API_VERSION), indent=2).encode())
    return out


def signed_requests(bodies: list[bytes], port: int) -> list[bytes]:
    ts = int(time.time())
    return [
        build_request(
            "POST",
            "/webhooks/stripe",
            f"127.0.0.1:{port}",
            body,
            {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, ts),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )
        for body in bodies
    ]


def stored_lines(landing: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in list_landing_files(landing, "stripe_events"))


def measure(app: str, bodies: list[bytes], connections: int, workers: int) -> tuple:
    if app == "receiver":

        def cmd(port):
            return [
                sys.executable,
                "-m",
                "ingestion.stripe_receiver",
                "--port",
                str(port),  # noqa: E731
                "--workers",
                str(workers),
            ]
    else:

        def cmd(port):
            return [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bench.naive_receiver:create_app",  # noqa: E731
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
                "--workers",
                str(workers),
            ]

    return measure_server(
        cmd,
        lambda landing: {"STRIPE_WEBHOOK_SECRET": SECRET, "LANDING_DIR": str(landing)},
        lambda port: signed_requests(bodies[:200] + bodies, port),
        connections,
        stored=stored_lines,
    )


def bench_pull(n_events: int) -> None:
    from fakes.stripe import FakeStripe
    from ingestion.stripe_pull import PullSettings, pull_events
    from simulator.stripe_objects import NEW_API_VERSION, customer, event

    now = int(time.time())
    fake = FakeStripe()
    fake.add_events(
        [
            event(
                f"evt_pull{i:08d}",
                "customer.created",
                now - 3600 + i * 3600 // n_events,
                customer(
                    cus_id=f"cus_pull{i:08d}",
                    created=now - 3600,
                    email=f"c{i}@example.com",
                    name="Pull Bench",
                    phone=None,
                    country="US",
                    api_version=NEW_API_VERSION,
                ),
                NEW_API_VERSION,
            )
            for i in range(n_events)
        ]
    )
    with fake, tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        settings = PullSettings(
            api_key=fake.api_key, api_base=fake.url, landing_dir=Path(tmp), requests_per_second=1000
        )
        t0 = time.perf_counter()
        result = pull_events(settings)
        seconds = time.perf_counter() - t0
        print(
            f"pull from the fake Events API: {result.events_written:,} events in {seconds:.2f} s = "
            f"{result.events_written / seconds:,.0f} events/s over {result.requests} requests of 100"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--naive-requests", type=int, default=3000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pull-events", type=int, default=20000)
    args = ap.parse_args(argv)
    print(
        f"# Stripe webhook receiver on {cores()} cores ({platform.processor() or platform.machine()}), "
        f"{args.workers} worker process(es), {args.connections} concurrent connections, closed loop"
    )
    bodies = events(max(args.requests, args.naive_requests))
    print(f"bodies: {len(bodies[0]):,} bytes each (invoice.paid, pretty-printed)")
    naive, naive_stored = measure("naive", bodies[: args.naive_requests], args.connections, args.workers)
    print(f"naive (construct_event + one fsynced file per event): {naive.summary()}; stored {naive_stored}")
    ours, stored = measure("receiver", bodies[: args.requests], args.connections, args.workers)
    print(f"receiver (verify_header + group commit):            {ours.summary()}; stored {stored}")
    ok = ours.statuses.get(200, 0)
    if stored < ok:
        print(f"DURABILITY FAILURE: {ok} acknowledged, {stored} stored")
        return 1
    print(
        f"ratio over naive: {ours.per_second / naive.per_second:.1f}x; "
        f"goal >= 2,000/s with p99 < 50 ms: "
        f"{'met' if ours.per_second >= 2000 and ours.percentile(99) < 50 else 'NOT met'}"
    )
    bench_pull(args.pull_events)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
