import hashlib
import json
from pathlib import Path

from simulator.cli import main as simulate
from simulator.world import World, WorldConfig


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_and_size_give_byte_identical_landing_files_and_truth(tmp_path):
    for name in ("a", "b"):
        assert simulate(["--visitors", "300", "--seed", "5", "--landing-dir", str(tmp_path / name / "landing")]) == 0
    assert _digest_tree(tmp_path / "a") == _digest_tree(tmp_path / "b")
    assert len(_digest_tree(tmp_path / "a")) > 10


def test_another_seed_gives_another_world(tmp_path):
    simulate(["--visitors", "300", "--seed", "5", "--landing-dir", str(tmp_path / "a")])
    simulate(["--visitors", "300", "--seed", "6", "--landing-dir", str(tmp_path / "b")])
    a = (tmp_path / "ground_truth" / "purchases.jsonl").read_text()
    assert '"seed":5' in a and '"seed":6' in a


def test_size_knob_scales_the_world():
    small = World(WorldConfig(visitors=200, seed=3)).generate()
    large = World(WorldConfig(visitors=2000, seed=3)).generate()
    assert len(large.tracking) > 7 * len(small.tracking)
    assert len(large.truth) > 5 * len(small.truth)


def test_world_contains_every_hard_case():
    world = World(WorldConfig(visitors=2000, seed=7)).generate()
    cases = {c for p in world.persons for c in p.hard_cases}
    assert {"cross_device", "shared_computer", "junk_email", "consent_denied"} <= cases

    events = [e for _, e in world.stripe]
    ids = [e["id"] for e in events]
    assert len(ids) > len(set(ids)), "some Stripe events must be delivered twice"
    versions = {e["api_version"] for e in events}
    assert versions == {"2024-06-20", "2026-10-28.endive"}, "pre-basil and the newest version by default"
    invoices = [e["data"]["object"] for e in events if e["type"] == "invoice.paid"]
    assert any("subscription" in i for i in invoices) and any("parent" in i for i in invoices)
    assert not any("payments" in i for i in invoices), "payments is includable: never in a webhook"
    assert {
        "invoice.paid",
        "invoice_payment.paid",
        "checkout.session.completed",
        "payment_intent.succeeded",
        "charge.succeeded",
        "charge.refunded",
        "refund.created",
        "customer.subscription.deleted",
    } <= {e["type"] for e in events}
    assert any(i["billing_reason"] == "subscription_cycle" for i in invoices), "subscriptions renew"
    sessions = [e["data"]["object"] for e in events if e["type"] == "checkout.session.completed"]
    assert any(s["client_reference_id"] for s in sessions) and any(not s["client_reference_id"] for s in sessions)

    traits = [m["traits"] for _, m in world.tracking if m["traits"]]
    emails = [t["email"] for t in traits if "email" in t]
    assert "test@test.com" in [e.strip().lower() for e in emails]
    assert any(e != e.strip() for e in emails) and any(e != e.lower() for e in emails)
    phones = [t["phone"] for t in traits if "phone" in t]
    assert any(p.startswith("(") for p in phones), "local US formats"
    assert any(p.startswith("+") for p in phones) and any(p.startswith("00") for p in phones)
    urls = [m["context"]["page"]["url"] for _, m in world.tracking]
    assert any("ttclid=" in u and "utm_campaign=" in u for u in urls)
    assert any("gclid=" in u for u in urls) and any("fbclid=" in u for u in urls)
    assert any(m["context"]["consent"]["categoryPreferences"]["advertising"] is False for _, m in world.tracking)


def test_landing_files_follow_the_contract(tmp_path):
    simulate(["--visitors", "200", "--seed", "9", "--landing-dir", str(tmp_path / "landing")])
    for line in (next((tmp_path / "landing" / "tracking").rglob("*.jsonl"))).read_text().splitlines():
        m = json.loads(line)
        assert m["messageId"] and m["type"] in ("page", "identify", "track") and m["timestamp"].endswith("Z")
        assert m["anonymousId"] or m["userId"]
    for line in (next((tmp_path / "landing" / "stripe_events").rglob("*.jsonl"))).read_text().splitlines():
        e = json.loads(line)
        assert e["object"] == "event" and e["id"].startswith("evt_") and isinstance(e["created"], int)
        assert isinstance(e["data"]["object"], dict)
    truth = json.loads((tmp_path / "ground_truth" / "purchases.jsonl").read_text().splitlines()[0])
    assert {"purchase_id", "person_id", "first_touch", "link", "amount_minor", "currency"} <= truth.keys()


def test_existing_world_is_never_overwritten_silently(tmp_path, capsys):
    args = ["--visitors", "50", "--seed", "1", "--landing-dir", str(tmp_path / "landing")]
    assert simulate(args) == 0
    assert simulate(args) == 2
    assert "immutable" in capsys.readouterr().err
    assert simulate(args + ["--replace"]) == 0
