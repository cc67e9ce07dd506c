"""The product running by itself, and shoppers arriving now: what the live-path test and the freshness benchmark drive.

:class:`LiveShop` makes shoppers with the simulator's own methods (so every Stripe object is rendered as the
world's are), at the wall clock's time: a TikTok click some minutes ago, a lead form, then a purchase through
Stripe a moment ago. :func:`running_product` starts what a deployment runs, each as its own process as users run
them: the collector, the Stripe webhook receiver and the Dagster daemon (its sensors start every run), over one
landing zone, warehouse and Dagster home, delivering to a TikTok Events API given by URL (the fake, in tests and
benchmarks). :meth:`RunningProduct.send` posts a shopper's browser messages to the collector and signs and posts
their Stripe events to the receiver, as the browser and Stripe would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import stripe

from simulator.world import World, WorldConfig

ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "live-write-key"
WEBHOOK_SECRET = "whsec_live_path_secret"


@dataclass
class Shopper:
    email: str
    tracking: list[dict]  # Segment messages, as the browser's SDK sends them
    stripe_events: list[dict]  # Stripe events, in the order Stripe sends them
    purchase_ids: list[str]  # the conversions' event ids (the purchase's Stripe object or Checkout Session)


class LiveShop:
    """Shoppers who clicked a TikTok ad and buy now. Each is a new person (its index is past any simulated world's
    visitors, so emails never meet a history's), with advertising consent, on their phone."""

    def __init__(self, seed: int = 1001, first_index: int = 90_000_000):
        self.world = World(WorldConfig(visitors=0, seed=seed, duplicate_delivery_share=0.0))
        self.next_index = first_index

    def shopper(self, now: datetime | None = None) -> Shopper:
        now = now or datetime.now(UTC)
        w = self.world
        w.world_end = now + timedelta(seconds=1)  # nothing renews or is refunded after now
        tracking_from, stripe_from, truth_from = len(w.tracking), len(w.stripe), len(w.truth)
        p = w._person(self.next_index)
        self.next_index += 1
        p.consent = True
        device = next((d for d in p.devices if d.kind == "phone"), p.devices[0])
        click, t = w._session(p, device, now - timedelta(minutes=20), "tiktok", 2)
        w._lead(p, device, t + timedelta(seconds=30), junk=False)
        w._purchase(p, device, now - timedelta(seconds=2), click, True, checkout_phone=True)
        stripe_events = [ev for _, ev in sorted(w.stripe[stripe_from:], key=lambda r: r[0])]
        return Shopper(
            email=p.email,
            tracking=[m for _, m in sorted(w.tracking[tracking_from:], key=lambda r: r[0])],
            stripe_events=stripe_events,
            purchase_ids=[row["tiktok_event_id"] for row in w.truth[truth_from:]],
        )


@dataclass
class RunningProduct:
    collector_url: str
    receiver_url: str
    landing: Path
    warehouse: Path
    dagster_home: Path
    logs: Path

    def send(self, shopper: Shopper, client: httpx.Client) -> float:
        """Send the shopper's browser messages, then their Stripe events; returns when the last webhook was
        acknowledged (time.time())."""
        r = client.post(f"{self.collector_url}/v1/batch", json={"batch": shopper.tracking}, auth=(WRITE_KEY, ""))
        r.raise_for_status()
        for event in shopper.stripe_events:
            body = json.dumps(event, indent=2)
            signature = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET, int(time.time()))
            r = client.post(
                f"{self.receiver_url}/webhooks/stripe",
                content=body.encode(),
                headers={"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature},
            )
            r.raise_for_status()
        return time.time()


def free_port() -> int:
    """A port of 127.0.0.1 free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(proc: subprocess.Popen, url: str, what: str, seconds: float = 60) -> None:
    """Until ``url`` answers 200; RuntimeError if the process exits first or the time runs out (``what``: where to
    look, for the message)."""
    deadline = time.time() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}: {what}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{proc.args} did not answer {url} within {seconds:g} s: {what}")
        time.sleep(0.05)


@contextmanager
def _process(argv: list[str], env: dict, log: Path, health_url: str | None = None):
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if health_url:
            wait_until_healthy(proc, health_url, f"see {log}")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the daemon's code server and run workers too
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextmanager
def running_product(root: Path, *, tiktok_url: str, access_token: str, pixel_code: str, env: dict | None = None):
    """The collector, the receiver and the Dagster daemon over ``root``'s landing zone, warehouse and Dagster home,
    with the default settings unless ``env`` names others. Stops them all (SIGTERM, as a deployment would)."""
    from orchestration.instance import EMBEDDED_CONFIG

    root = Path(root)
    landing, warehouse, home, logs = root / "landing", root / "warehouse.duckdb", root / "dagster_home", root / "logs"
    for d in (landing, home, logs):
        d.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(EMBEDDED_CONFIG, home / "dagster.yaml")
    full_env = {
        **os.environ,
        "LANDING_DIR": str(landing),
        "WAREHOUSE_PATH": str(warehouse),
        "DAGSTER_HOME": str(home),
        "COLLECTOR_WRITE_KEYS": WRITE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TIKTOK_ACCESS_TOKEN": access_token,
        "TIKTOK_PIXEL_CODE": pixel_code,
        "TIKTOK_API_BASE_URL": tiktok_url,
        **(env or {}),
    }
    collector_port, receiver_port = free_port(), free_port()
    daemon = Path(sys.executable).with_name("dagster-daemon")
    with ExitStack() as stack:
        for module, port in (("ingestion.collector", collector_port), ("ingestion.stripe_receiver", receiver_port)):
            stack.enter_context(
                _process(
                    [sys.executable, "-m", module, "--port", str(port)],
                    full_env,
                    logs / f"{module.split('.')[-1]}.log",
                    f"http://127.0.0.1:{port}/healthz",
                )
            )
        stack.enter_context(
            _process([str(daemon), "run", "-m", "orchestration.definitions"], full_env, logs / "daemon.log")
        )
        yield RunningProduct(
            collector_url=f"http://127.0.0.1:{collector_port}",
            receiver_url=f"http://127.0.0.1:{receiver_port}",
            landing=landing,
            warehouse=warehouse,
            dagster_home=home,
            logs=logs,
        )
