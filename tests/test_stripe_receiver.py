"""The Stripe webhook receiver over real HTTP, run as its own process as users run it."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import stripe

from ingestion.durable import recover_orphans
from ingestion.landing import list_landing_files
from tests.conftest import Workspace
from tests.services import ROOT, acknowledged_until_sigkill, service

OLD_SECRET, NEW_SECRET = "whsec_old_secret_before_rotation", "whsec_new_secret_after_rotation"


def stripe_event(event_id: str, created: int | None = None, **obj) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created or int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": obj.pop("type", "customer.created"),
        "data": {"object": {"id": obj.pop("id", "cus_" + event_id[4:]), "object": "customer", **obj}},
    }


def post(
    url: str,
    body: bytes | str,
    secret: str | None = NEW_SECRET,
    timestamp: int | None = None,
    header: str | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    if isinstance(body, str):
        body = body.encode()
    if header is None and secret is not None:
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp)
    headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": header} if header else {})
    return (client or httpx).post(f"{url}/webhooks/stripe", content=body, headers=headers, timeout=30)


def landed(landing) -> list[dict]:
    return [
        json.loads(line) for p in list_landing_files(landing, "stripe_events") for line in p.read_text().splitlines()
    ]


@pytest.fixture
def env(tmp_path):
    return {"STRIPE_WEBHOOK_SECRET": f"{OLD_SECRET},{NEW_SECRET}", "LANDING_DIR": str(tmp_path / "landing")}


def test_events_signed_with_the_current_or_the_rotated_secret_are_stored_durably(env, tmp_path):
    landing = tmp_path / "landing"
    with service("ingestion.stripe_receiver", env) as rx:
        pretty = json.dumps(stripe_event("evt_new", email="a@example.com"), indent=2)  # as Stripe sends it
        r1 = post(rx.url, pretty, NEW_SECRET)
        r2 = post(rx.url, json.dumps(stripe_event("evt_old")), OLD_SECRET)
        assert (r1.status_code, r1.json()) == (200, {"received": True, "id": "evt_new"})
        assert r2.status_code == 200
        assert httpx.get(f"{rx.url}/healthz").json()["stored"] == 2
        # graceful: requests in flight finish and the segment is published on the way out (uvicorn then
        # re-raises the signal, so the exit status is the signal's)
        assert rx.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    events = landed(landing)
    assert sorted(e["id"] for e in events) == ["evt_new", "evt_old"]
    assert events[[e["id"] for e in events].index("evt_new")] == json.loads(pretty)
    assert not list(landing.rglob(".open-*")), "a clean shutdown leaves no open segment"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("wrong secret", "no signature matches"),
        ("body changed after signing", "no signature matches"),
        ("no header", "missing Stripe-Signature"),
        ("garbage header", "no signature matches"),
        ("stale timestamp", "timestamp older than 300 s"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason_and_nothing_is_stored(env, tmp_path, case, expected):
    body = json.dumps(stripe_event("evt_bad"))
    with service("ingestion.stripe_receiver", env) as rx:
        if case == "wrong secret":
            r = post(rx.url, body, "whsec_someone_elses")
        elif case == "body changed after signing":
            header = stripe.WebhookSignature.generate_signature_header(body, NEW_SECRET)
            r = post(rx.url, body.replace("evt_bad", "evt_bad2"), header=header)
        elif case == "no header":
            r = post(rx.url, body, secret=None)
        elif case == "garbage header":
            r = post(rx.url, body, header="t=abc,v1=zz")
        else:
            r = post(rx.url, body, NEW_SECRET, timestamp=int(time.time()) - 301)
        assert r.status_code == 400
        assert expected in r.json()["error"]
    assert landed(tmp_path / "landing") == []


def test_malformed_oversize_and_non_event_bodies_get_clear_4xx(env, tmp_path):
    with service("ingestion.stripe_receiver", env) as rx:
        ok = post(rx.url, json.dumps(stripe_event("evt_kept")))
        not_json = post(rx.url, "{not json")
        not_event = post(rx.url, json.dumps({"id": "x", "object": "charge"}))
        no_object = post(rx.url, json.dumps({"id": "evt_x", "object": "event", "type": "x", "created": 1}))
        big = json.dumps(stripe_event("evt_big", note="x" * (1 << 20)))
        too_big = post(rx.url, big)
        wrong_method = httpx.get(f"{rx.url}/webhooks/stripe")
        assert ok.status_code == 200
        assert (not_json.status_code, not_json.json()["error"]) == (400, "body is not JSON")
        assert not_event.status_code == 400 and "not a Stripe event" in not_event.json()["error"]
        assert no_object.status_code == 400 and "data.object" in no_object.json()["error"]
        assert too_big.status_code == 413 and "larger than" in too_big.json()["error"]
        assert wrong_method.status_code == 405
    assert [e["id"] for e in landed(tmp_path / "landing")] == ["evt_kept"]


def test_duplicate_and_out_of_order_deliveries_are_accepted_and_stage_the_latest_state(env, tmp_path):
    now = int(time.time())
    newer = stripe_event("evt_2", created=now, email="new@example.com", type="customer.updated", id="cus_1")
    older = stripe_event("evt_1", created=now - 60, email="old@example.com", id="cus_1")
    with service("ingestion.stripe_receiver", env) as rx:
        for e in (newer, older, newer, older):  # Stripe retries, in no particular order
            assert post(rx.url, json.dumps(e)).status_code == 200
    ws = Workspace(tmp_path)  # its landing zone is where the receiver wrote
    ws.dbt("build", "--select", "+stg_stripe__customers")
    assert ws.query("select event_id from raw.stripe_events order by created_at") == [("evt_1",), ("evt_2",)]
    assert ws.query("select stripe_customer_id, email from staging.stg_stripe__customers") == [
        ("cus_1", "new@example.com")
    ]


def test_the_receiver_refuses_to_start_without_a_secret(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "ingestion.stripe_receiver", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "STRIPE_WEBHOOK_SECRET": "", "LANDING_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "STRIPE_WEBHOOK_SECRET is not set" in out.stderr


def test_every_acknowledged_event_survives_sigkill_mid_stream(env, tmp_path):
    """Clients send signed events concurrently; the receiver is killed without warning; every event that got a
    2xx is in the landing zone (published by the orphan recovery the loader and the next receiver run)."""
    landing = tmp_path / "landing"

    def send(client, n, i):
        event_id = f"evt_c{n}_{i:06d}"
        r = post(rx.url, json.dumps(stripe_event(event_id, note="y" * 500)), client=client)
        return event_id, r.status_code

    with service("ingestion.stripe_receiver", env) as rx:
        acked = acknowledged_until_sigkill(rx, send)
    assert list(landing.rglob(".open-*")), "the killed receiver left its open segment"
    recover_orphans(landing / "stripe_events")
    stored = [e["id"] for e in landed(landing)]  # every line parses: a torn last line was cut
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    assert len(stored) == len(set(stored))
    assert not list(landing.rglob(".open-*"))


def test_a_body_that_never_arrives_is_dropped_after_the_timeout(tmp_path):
    import socket

    env = {
        "STRIPE_WEBHOOK_SECRET": "whsec_" + "t" * 24,
        "LANDING_DIR": str(tmp_path / "landing"),
        "STRIPE_WEBHOOK_BODY_TIMEOUT_SECONDS": "1",
    }
    with service("ingestion.stripe_receiver", env) as rec:
        with socket.create_connection(("127.0.0.1", rec.port)) as s:
            s.sendall(b'POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{"id": ')
            s.settimeout(10)
            started = time.monotonic()
            status_line = s.recv(4096).split(b"\r\n")[0]
        assert b" 408 " in status_line and time.monotonic() - started < 5
        assert httpx.get(f"{rec.url}/healthz").status_code == 200
