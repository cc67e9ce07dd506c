"""Hostile landing lines, mixed into a simulated world: each once made every later run fail (a poison pill). The run
must succeed, the bad line cost one line, and the world's answers stay right (issue 19's poison-pill class)."""

import json

import pytest

from ingestion.landing import write_jsonl_atomic

pytestmark = pytest.mark.slow


def test_poison_pills_cost_one_line_each_and_never_stop_a_run(workspace):
    workspace.add_world(visitors=300, seed=31)
    victim = workspace.truth_rows()[0]["first_touch"]["anonymous_id"]
    tracking = workspace.landing / "tracking" / "attack"
    stripe = workspace.landing / "stripe_events" / "attack"
    page = {"type": "page", "timestamp": "2026-07-01T10:00:00Z"}
    write_jsonl_atomic(tracking / "pills.jsonl", [
        # a malformed percent-encoding in a campaign parameter (URL decoding raised in staging)
        {**page, "messageId": "pct", "anonymousId": "b-attacker",
         "context": {"page": {"url": "https://shop.example/?utm_source=tiktok&utm_campaign=%E0%A4%A", "path": "/"}}},
        # the separator of the identity graph's node text inside a browser id, built on the victim's id
        {**page, "messageId": "colon", "anonymousId": victim + ":x",
         "context": {"page": {"url": "https://shop.example/?ttclid=E.C.P.attacker&utm_source=tiktok"
                                     "&utm_campaign=attacker_campaign", "path": "/"}}},
    ])
    # one byte that is not UTF-8 on the middle line of three
    good = json.dumps({**page, "messageId": "utf8-good-1", "anonymousId": "b-u"}).encode()
    (tracking / "bytes.jsonl").write_bytes(good + b"\n" + b'{"messageId": "bad\xff", "type": "page"}\n'
                                          + good.replace(b"utf8-good-1", b"utf8-good-3") + b"\n")
    # a signed Stripe event whose created is far out of range (the loader's timestamp overflowed)
    write_jsonl_atomic(stripe / "created.jsonl", [
        {"id": "evt_far", "object": "event", "api_version": "2026-10-28.endive", "created": 99999999999999,
         "type": "customer.created", "data": {"object": {"id": "cus_far", "object": "customer",
                                                          "created": 99999999999999, "email": "far@example.com"}}},
        {"id": "evt_amount", "object": "event", "api_version": "2026-10-28.endive", "created": 1780000000,
         "type": "charge.succeeded", "data": {"object": {"id": "ch_odd", "object": "charge", "amount": "lots",
                                                          "amount_refunded": 1e30, "created": -99999999999999,
                                                          "currency": "usd"}}},
    ])

    result = workspace.run()
    assert result.success
    again = workspace.run()
    assert again.success, "and every run after it"

    quarantined = set(workspace.query("select file, line_number, reason from raw.quarantine"))
    assert quarantined == {("tracking/attack/bytes.jsonl", 2, "line is not valid UTF-8"),
                           ("stripe_events/attack/created.jsonl", 1, "created is out of range: 99999999999999")}
    loaded = {r[0] for r in workspace.query("select message_id from raw.tracking_events where message_id like 'utf8%'")}
    assert loaded == {"utf8-good-1", "utf8-good-3"}, "the valid lines of the file load"
    assert workspace.query("select utm_campaign, utm_source from staging.stg_tracking__events "
                           "where message_id = 'pct'") == [(None, "tiktok")]
    assert workspace.query("select amount_minor, amount_refunded, created_at from staging.stg_stripe__charges "
                           "where charge_id = 'ch_odd'") == [(None, None, None)]

    # the colon makes a browser of its own, not a second copy of the victim's touches
    node = workspace.query("select node_value, customer_id from intermediate.int_identity_components "
                           "where node = ?", [f"browser:{victim}:x"])
    assert node and node[0][0] == victim + ":x"
    victim_customer = workspace.scalar("select customer_id from intermediate.int_identity_components "
                                       "where node = ?", [f"browser:{victim}"])
    assert victim_customer != node[0][1]
    assert workspace.scalar("select count(*) from marts.customer_journeys where customer_id = ? "
                            "and campaign = 'attacker_campaign'", [victim_customer]) == 0

    from simulator.evaluate import score
    import duckdb

    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        s = score(con, workspace.truth)
    assert (s.found_purchases, s.extra_purchases, s.wrong_amounts, s.false_merges) == (s.truth_purchases, 0, 0, 0)
    assert s.tiktok_right_campaign_share >= 0.99
