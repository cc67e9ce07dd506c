"""Hostile landing lines, mixed into a simulated world: each once made every later run fail (a poison pill). The run
must succeed, the bad line cost one line, and the world's answers stay right (issue 19's poison-pill class)."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.landing import write_jsonl_atomic

pytestmark = pytest.mark.slow


def _card_purchase(who: str, email: str, created: int, phone: str | None = None) -> list[dict]:
    """A Stripe customer's card payment without an invoice, as endive sends it: customer, PaymentIntent, charge
    (ids cus_<who>, pi_<who>, ch_<who>)."""
    from simulator import stripe_objects as so

    v, name = so.NEW_API_VERSION, f"{who.upper()} Person"
    cus, pi, ch = f"cus_{who}", f"pi_{who}", f"ch_{who}"
    return [
        so.event(
            f"evt_c{who}",
            "customer.created",
            created,
            so.customer(cus_id=cus, created=created, email=email, name=name, phone=phone, country="US", api_version=v),
            v,
        ),
        so.event(
            f"evt_p{who}",
            "payment_intent.succeeded",
            created,
            so.payment_intent(
                pi_id=pi,
                created=created,
                amount_minor=4900,
                currency="usd",
                cus_id=cus,
                receipt_email=None,
                charge_id=ch,
                invoice_id=None,
                description=None,
                api_version=v,
            ),
            v,
        ),
        so.event(
            f"evt_h{who}",
            "charge.succeeded",
            created,
            so.charge(
                ch_id=ch,
                created=created,
                amount_minor=4900,
                currency="usd",
                cus_id=cus,
                pi_id=pi,
                email=email,
                name=name,
                phone=phone,
                country="US",
                invoice_id=None,
                refunded_minor=0,
                api_version=v,
            ),
            v,
        ),
    ]


def _later_stripe_event(created: int) -> dict:
    """A later event: a payment without an invoice counts once the stream has moved past its settling time."""
    from simulator import stripe_objects as so

    v = so.NEW_API_VERSION
    return so.event(
        "evt_later",
        "customer.created",
        created,
        so.customer(
            cus_id="cus_z", created=created, email="z@example.org", name="Z", phone=None, country="US", api_version=v
        ),
        v,
    )


def test_poison_pills_cost_one_line_each_and_never_stop_a_run(workspace):
    workspace.add_world(visitors=300, seed=31)
    victim = workspace.truth_rows()[0]["first_touch"]["anonymous_id"]
    tracking = workspace.landing / "tracking" / "attack"
    stripe = workspace.landing / "stripe_events" / "attack"
    page = {"type": "page", "timestamp": "2026-07-01T10:00:00Z"}
    write_jsonl_atomic(
        tracking / "pills.jsonl",
        [
            # a malformed percent-encoding in a campaign parameter (URL decoding raised in staging)
            {
                **page,
                "messageId": "pct",
                "anonymousId": "b-attacker",
                "context": {
                    "page": {"url": "https://shop.example/?utm_source=tiktok&utm_campaign=%E0%A4%A", "path": "/"}
                },
            },
            # the separator of the identity graph's node text inside a browser id, built on the victim's id
            {
                **page,
                "messageId": "colon",
                "anonymousId": victim + ":x",
                "context": {
                    "page": {
                        "url": "https://shop.example/?ttclid=E.C.P.attacker&utm_source=tiktok"
                        "&utm_campaign=attacker_campaign",
                        "path": "/",
                    }
                },
            },
        ],
    )
    # one byte that is not UTF-8 on the middle line of three
    good = json.dumps({**page, "messageId": "utf8-good-1", "anonymousId": "b-u"}).encode()
    (tracking / "bytes.jsonl").write_bytes(
        good
        + b"\n"
        + b'{"messageId": "bad\xff", "type": "page"}\n'
        + good.replace(b"utf8-good-1", b"utf8-good-3")
        + b"\n"
    )
    # a signed Stripe event whose created is far out of range (the loader's timestamp overflowed)
    write_jsonl_atomic(
        stripe / "created.jsonl",
        [
            {
                "id": "evt_far",
                "object": "event",
                "api_version": "2026-10-28.endive",
                "created": 99999999999999,
                "type": "customer.created",
                "data": {
                    "object": {
                        "id": "cus_far",
                        "object": "customer",
                        "created": 99999999999999,
                        "email": "far@example.com",
                    }
                },
            },
            {
                "id": "evt_amount",
                "object": "event",
                "api_version": "2026-10-28.endive",
                "created": 1780000000,
                "type": "charge.succeeded",
                "data": {
                    "object": {
                        "id": "ch_odd",
                        "object": "charge",
                        "amount": "lots",
                        "amount_refunded": 1e30,
                        "created": -99999999999999,
                        "currency": "usd",
                    }
                },
            },
        ],
    )

    result = workspace.run()
    assert result.success
    again = workspace.run()
    assert again.success, "and every run after it"

    quarantined = set(workspace.query("select file, line_number, reason from raw.quarantine"))
    assert quarantined == {
        ("tracking/attack/bytes.jsonl", 2, "line is not valid UTF-8"),
        ("stripe_events/attack/created.jsonl", 1, "created is out of range: 99999999999999"),
    }
    loaded = {r[0] for r in workspace.query("select message_id from raw.tracking_events where message_id like 'utf8%'")}
    assert loaded == {"utf8-good-1", "utf8-good-3"}, "the valid lines of the file load"
    assert workspace.query(
        "select utm_campaign, utm_source from staging.stg_tracking__events where message_id = 'pct'"
    ) == [(None, "tiktok")]
    assert workspace.query(
        "select amount_minor, amount_refunded, created_at from staging.stg_stripe__charges where charge_id = 'ch_odd'"
    ) == [(None, None, None)]

    # the colon makes a browser of its own, not a second copy of the victim's touches
    node = workspace.query(
        "select node_value, customer_id from intermediate.int_identity_components where node = ?",
        [f"browser:{victim}:x"],
    )
    assert node and node[0][0] == victim + ":x"
    victim_customer = workspace.scalar(
        "select customer_id from intermediate.int_identity_components where node = ?", [f"browser:{victim}"]
    )
    assert victim_customer != node[0][1]
    assert (
        workspace.scalar(
            "select count(*) from marts.customer_journeys where customer_id = ? and campaign = 'attacker_campaign'",
            [victim_customer],
        )
        == 0
    )

    import duckdb

    from simulator.evaluate import score

    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        s = score(con, workspace.truth)
    assert (s.found_purchases, s.extra_purchases, s.wrong_amounts, s.false_merges) == (s.truth_purchases, 0, 0, 0)
    assert s.tiktok_right_campaign_share >= 0.99


def test_a_forged_identify_through_the_public_collector_cannot_take_over_a_customers_answers(workspace):
    """The attacker has only the public write key: an identify with a victim's email from the attacker's browser,
    with backdated and future-dated TikTok pages, consent flags both ways, and one user id claiming many people's
    emails. The victim's first touch, conversion keys and consent stay as they were."""
    import httpx

    from tests.services import service

    workspace.add_world(visitors=300, seed=41)
    assert workspace.run().success
    before = {
        r[0]: r[1:]
        for r in workspace.query(
            "select purchase_id, first_touch_at, first_touch_campaign, first_touch_ttclid "
            "from marts.attributed_purchases"
        )
    }
    keys_before = {
        r[0]: r[1:]
        for r in workspace.query(
            "select coalesce(purchase_id, event_id), ttclid, ttp, ip, user_agent, emails, phones, "
            "advertising_consent, eligible from marts.tiktok_conversions"
        )
    }
    victim_email, victim_purchase = workspace.query(
        "select email_normalised, purchase_id from intermediate.int_purchases where email_normalised is not null "
        "order by purchased_at limit 1"
    )[0]
    others = [
        r[0]
        for r in workspace.query(
            "select distinct email_normalised from intermediate.int_purchases where email_normalised is not null "
            "and email_normalised <> ? order by 1 limit 6",
            [victim_email],
        )
    ]
    attack_page = "https://shop.example/?ttclid=E.C.P.forged&utm_source=tiktok&utm_campaign=forged_campaign"
    key = "wk_public"
    env = {"COLLECTOR_WRITE_KEYS": key, "LANDING_DIR": str(workspace.landing), "LANDING_ROTATE_SECONDS": "1"}
    with service("ingestion.collector", env) as col:

        def send(batch):
            r = httpx.post(f"{col.url}/v1/batch", auth=(key, ""), json={"batch": batch})
            assert r.status_code == 200, r.text

        # the collector refuses more than a day ahead; 20 hours ahead it accepts, and staging clamps
        ahead = (datetime.now(UTC) + timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ctx = {
            "page": {"url": attack_page},
            "cookies": {"_ttp": "ttp-forged"},
            "userAgent": "Attacker/1.0",
            "ip": "198.51.100.66",
        }
        send(
            [
                {"type": "page", "anonymousId": "b-attacker", "timestamp": "2026-01-02T00:00:00Z", "context": ctx},
                {
                    "type": "identify",
                    "anonymousId": "b-attacker",
                    "timestamp": "2026-01-02T00:00:01Z",
                    "traits": {"email": victim_email},
                    "context": ctx,
                },
                {
                    "type": "page",
                    "anonymousId": "b-attacker",
                    "timestamp": ahead,
                    "context": {**ctx, "consent": {"categoryPreferences": {"advertising": True}}},
                },
            ]
        )
        # one user id claiming several customers' emails
        send(
            [
                {
                    "type": "identify",
                    "userId": "u-forged",
                    "anonymousId": f"b-spray-{i}",
                    "timestamp": "2026-01-02T00:00:00Z",
                    "traits": {"email": e},
                }
                for i, e in enumerate(others)
            ]
        )
    assert workspace.run().success

    after = {
        r[0]: r[1:]
        for r in workspace.query(
            "select purchase_id, first_touch_at, first_touch_campaign, first_touch_ttclid "
            "from marts.attributed_purchases"
        )
    }
    assert after == before, "no first touch moved"
    keys_after = {
        r[0]: r[1:]
        for r in workspace.query(
            "select coalesce(purchase_id, event_id), ttclid, ttp, ip, user_agent, emails, phones, "
            "advertising_consent, eligible from marts.tiktok_conversions"
        )
    }
    assert keys_after == keys_before, "no conversion gained the attacker's keys or lost its consent"
    assert "forged" not in str(keys_after[victim_purchase])
    edges = workspace.query(
        "select is_used, unused_reason from intermediate.int_identity_edges "
        "where 'user:u-forged' in (left_node, right_node)"
    )
    assert len(edges) == 2 * len(others), "its browser and email edges, audited"
    assert {e for e in edges} == {(False, f"shared_user_id: {len(others)} emails")}
    raw = workspace.query(
        "select client_event_at, event_at, received_at from staging.stg_tracking__events "
        "where anonymous_id = 'b-attacker' order by client_event_at"
    )
    assert raw[0][0].year == 2026 and raw[0][0].month == 1 and raw[0][1] > raw[0][0], "backdating clamped"
    assert raw[-1][1] <= raw[-1][2] + timedelta(minutes=10), "future dating clamped"


def test_a_denial_of_consent_anywhere_in_the_person_wins_over_later_grants(workspace):
    workspace.add_world(visitors=300, seed=43)
    assert workspace.run().success
    denied = workspace.query(
        "select event_id, customer_id from marts.tiktok_conversions where not advertising_consent order by 1"
    )
    assert denied
    browser = workspace.scalar(
        "select node_value from intermediate.int_identity_components "
        "where node_type = 'browser' and customer_id = ? limit 1",
        [denied[0][1]],
    )
    write_jsonl_atomic(
        workspace.landing / "tracking" / "later" / "grant.jsonl",
        [
            {
                "messageId": "late-grant",
                "type": "page",
                "timestamp": "2026-12-01T00:00:00Z",
                "anonymousId": browser,
                "context": {
                    "page": {"url": "https://shop.example/"},
                    "consent": {"categoryPreferences": {"advertising": True}},
                },
            }
        ],
    )
    assert workspace.run().success
    assert (
        workspace.query(
            "select event_id, customer_id from marts.tiktok_conversions where not advertising_consent order by 1"
        )
        == denied
    )


def test_a_conversion_carries_its_own_customers_keys_not_those_of_whoever_it_was_stitched_to(workspace):
    """Two Stripe customers who share a phone are one stitched person (a household, or a claim that made them
    one); each purchase is sent with its own customer's email, never the other's."""
    now = int(time.time()) - 3 * 86400
    events = [
        *_card_purchase("a", "a.person@buyers.net", now, "+14155550100"),
        *_card_purchase("b", "b.person@buyers.net", now, "+14155550100"),
        _later_stripe_event(now + 7200),
    ]
    write_jsonl_atomic(workspace.landing / "stripe_events" / "household" / "e.jsonl", events)
    assert workspace.run().success
    rows = dict(
        (r[0], r[1:])
        for r in workspace.query("select event_id, customer_id, emails, phones from marts.tiktok_conversions")
    )
    assert rows["pi_a"][0] == rows["pi_b"][0], "stitched into one person"
    assert rows["pi_a"][1:] == ("a.person@buyers.net", "+14155550100")
    assert rows["pi_b"][1:] == ("b.person@buyers.net", "+14155550100")


def test_a_later_claim_of_a_customers_email_does_not_put_the_claimants_browser_on_their_next_purchase(workspace):
    """A customer's browser clicked a TikTok ad and typed their email; days later another browser claims the same
    email (anyone can, with the public write key) and is tracked with its own click, cookie, address and agent; then
    the customer buys. The conversion keeps the customer's own browser's ttclid, _ttp, IP and user agent: the
    first claimant's, since a later claim never outranks an earlier one or a verified link."""
    now = datetime.now(UTC).replace(microsecond=0)

    def at(delta):
        return (now + delta).strftime("%Y-%m-%dT%H:%M:%SZ")

    def line(mid, kind, browser, when, ctx, **extra):
        return {
            "messageId": mid,
            "type": kind,
            "anonymousId": browser,
            "timestamp": at(when),
            "receivedAt": at(when),
            "context": ctx,
            **extra,
        }

    victim_ctx = {
        "page": {"url": "https://shop.example/?ttclid=E.C.P.victim&utm_source=tiktok&utm_campaign=spring"},
        "cookies": {"_ttp": "ttp-victim"},
        "userAgent": "Victim/1.0",
        "ip": "203.0.113.5",
    }
    attacker_ctx = {
        "page": {"url": "https://shop.example/?ttclid=E.C.P.forged&utm_source=tiktok&utm_campaign=x"},
        "cookies": {"_ttp": "ttp-forged"},
        "userAgent": "Attacker/1.0",
        "ip": "198.51.100.66",
    }
    email = {"email": "victim@buyers.net"}
    write_jsonl_atomic(
        workspace.landing / "tracking" / "claims" / "t.jsonl",
        [
            line("v1", "page", "b-victim", timedelta(days=-5), victim_ctx),
            line("v2", "identify", "b-victim", timedelta(days=-5, minutes=1), victim_ctx, traits=email),
            line("a1", "identify", "b-attacker", timedelta(days=-2), attacker_ctx, traits=email),
            line("a2", "page", "b-attacker", timedelta(days=-1, hours=-12), attacker_ctx),
        ],
    )
    created = int(time.time()) - 86400
    write_jsonl_atomic(
        workspace.landing / "stripe_events" / "claims" / "e.jsonl",
        [*_card_purchase("v", "victim@buyers.net", created), _later_stripe_event(created + 7200)],
    )
    assert workspace.run().success
    assert workspace.query(
        "select ttclid, ttp, ip, user_agent, emails from marts.tiktok_conversions where event_id = 'pi_v'"
    ) == [("E.C.P.victim", "ttp-victim", "203.0.113.5", "Victim/1.0", "victim@buyers.net")]


def test_a_server_key_link_outranks_an_earlier_public_claim_and_a_browser_cannot_pose_as_a_server(workspace):
    """An attacker claims a customer's email first, under the public key, and says its message came via a server
    key; later the shop's backend (a server write key) identifies the customer's real browser with the email. The
    purchase carries the real browser's click, cookie and device: the verified link wins over the earlier claim."""
    import httpx

    from tests.services import service

    now = datetime.now(UTC).replace(microsecond=0)

    def at(delta):
        return (now + delta).strftime("%Y-%m-%dT%H:%M:%SZ")

    email = {"email": "shopper@buyers.net"}
    attacker = {
        "page": {"url": "https://shop.example/?ttclid=E.C.P.forged&utm_source=tiktok"},
        "cookies": {"_ttp": "ttp-forged"},
        "userAgent": "Attacker/1.0",
    }
    shopper = {
        "page": {"url": "https://shop.example/?ttclid=E.C.P.real&utm_source=tiktok"},
        "cookies": {"_ttp": "ttp-real"},
        "userAgent": "Shopper/1.0",
    }
    env = {
        "COLLECTOR_WRITE_KEYS": "wk_public",
        "COLLECTOR_SERVER_WRITE_KEYS": "wk_server",
        "LANDING_DIR": str(workspace.landing),
        "LANDING_ROTATE_SECONDS": "1",
    }
    with service("ingestion.collector", env) as col:

        def send(key, batch):
            r = httpx.post(f"{col.url}/v1/batch", auth=(key, ""), json={"batch": batch})
            assert r.status_code == 200, r.text

        send(
            "wk_public",
            [
                {
                    "type": "page",
                    "anonymousId": "b-attacker",
                    "timestamp": at(timedelta(hours=-3)),
                    "context": attacker,
                    "receivedVia": "server_key",
                },
                {
                    "type": "identify",
                    "anonymousId": "b-attacker",
                    "timestamp": at(timedelta(hours=-3)),
                    "traits": email,
                    "context": attacker,
                    "receivedVia": "server_key",
                },
            ],
        )
        time.sleep(1.1)
        send(
            "wk_public",
            [{"type": "page", "anonymousId": "b-shopper", "timestamp": at(timedelta(hours=-2)), "context": shopper}],
        )
        time.sleep(1.1)
        send(
            "wk_server",
            [
                {
                    "type": "identify",
                    "anonymousId": "b-shopper",
                    "userId": "u-shopper",
                    "timestamp": at(timedelta(hours=-2)),
                    "traits": email,
                }
            ],
        )
    created = int(time.time()) - 3600
    write_jsonl_atomic(
        workspace.landing / "stripe_events" / "shop" / "e.jsonl",
        [*_card_purchase("s", "shopper@buyers.net", created), _later_stripe_event(created + 7200)],
    )
    assert workspace.run().success
    verified = dict(
        workspace.query("select anonymous_id || '/' || event_type, is_verified from staging.stg_tracking__events")
    )
    assert verified == {
        "b-attacker/page": False,
        "b-attacker/identify": False,
        "b-shopper/page": False,
        "b-shopper/identify": True,
    }
    assert workspace.query("select ttclid, ttp, user_agent from marts.tiktok_conversions where event_id = 'pi_s'") == [
        ("E.C.P.real", "ttp-real", "Shopper/1.0")
    ]
