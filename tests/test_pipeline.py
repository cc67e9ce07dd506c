"""The whole pipeline through Dagster on small simulated worlds, checked against the world's ground truth."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from ingestion.landing import write_jsonl_atomic

pytestmark = pytest.mark.slow

ATTRIBUTED_PURCHASES = [
    "purchase_id",
    "stripe_customer_id",
    "customer_id",
    "purchased_at",
    "amount",
    "refunded_amount",
    "net_amount",
    "currency",
    "is_first_purchase",
    "first_touch_at",
    "first_touch_channel",
    "first_touch_source",
    "first_touch_campaign",
    "first_touch_ttclid",
    "first_touch_landing_page",
    "last_touch_channel",
    "last_touch_campaign",
    "attributed_to_tiktok",
]
CUSTOMER_JOURNEYS = [
    "customer_id",
    "touch_index",
    "touched_at",
    "anonymous_id",
    "channel",
    "source",
    "medium",
    "campaign",
    "click_id_type",
    "click_id",
    "url",
]
TIKTOK_CONVERSIONS = [
    "event_id",
    "event_name",
    "event_time",
    "purchase_id",
    "value",
    "currency",
    "has_ttclid",
    "has_email",
    "has_phone",
    "eligible",
    "ineligible_reason",
]
LEDGER = [
    "event_id",
    "status",
    "attempts",
    "last_code",
    "last_message",
    "request_id",
    "first_attempt_at",
    "last_attempt_at",
]
EXPONENT = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


def _columns(ws, schema, table):
    return [
        r[0]
        for r in ws.query(
            "select column_name from information_schema.columns where table_schema = ? "
            "and table_name = ? order by ordinal_position",
            [schema, table],
        )
    ]


def test_the_warehouse_relations_have_the_contracted_columns(built_world):
    for schema, table, cols in [
        ("marts", "attributed_purchases", ATTRIBUTED_PURCHASES),
        ("marts", "customer_journeys", CUSTOMER_JOURNEYS),
        ("marts", "tiktok_conversions", TIKTOK_CONVERSIONS),
        ("reverse_etl", "tiktok_deliveries", LEDGER),
    ]:
        missing = set(cols) - set(_columns(built_world, schema, table))
        assert not missing, f"{schema}.{table} lacks {missing}"


def test_tiktok_revenue_is_attributed_to_the_right_campaign_and_no_one_is_merged_by_mistake(built_world):
    import duckdb

    from simulator.evaluate import naive_baselines, score

    with duckdb.connect(str(built_world.warehouse), read_only=True) as con:
        s = score(con, built_world.truth)
        baselines = naive_baselines(con, built_world.truth)
    print(
        f"\nground truth: {s.found_purchases}/{s.truth_purchases} purchases found, {s.extra_purchases} extra, "
        f"{s.wrong_amounts} with a wrong amount; TikTok revenue on the right "
        f"campaign {100 * s.tiktok_right_campaign_share:.2f}% of USD {s.tiktok_linkable_revenue:,.2f} linkable; "
        f"USD {s.tiktok_unlinkable_revenue:,.2f} unlinkable; false merges {s.false_merges}"
    )
    for name, share in baselines.items():
        print(f"  naive baseline, {name}: {100 * share:.2f}% of the same revenue on the right campaign")
    assert s.found_purchases == s.truth_purchases
    assert s.extra_purchases == 0 and s.wrong_amounts == 0, "each payment counted once, refunds netted"
    assert s.tiktok_right_campaign_share >= 0.99
    assert s.false_merges == 0


def test_money_is_counted_once_in_major_units_with_refunds_netted(built_world):
    found = {
        r[0]: r[1:]
        for r in built_world.query(
            "select purchase_id, amount, refunded_amount, net_amount, currency, is_renewal "
            "from marts.attributed_purchases"
        )
    }
    truth = built_world.truth_rows()
    assert len(found) == len(truth)
    for t in truth:
        amount, refunded, net, currency, is_renewal = found[t["purchase_id"]]
        scale = 10 ** EXPONENT[t["currency"]]
        assert currency == t["currency"]
        assert float(amount) == pytest.approx(t["amount_minor"] / scale)
        assert float(refunded) == pytest.approx(t.get("refunded_minor", 0) / scale)
        assert float(net) == pytest.approx(float(amount) - float(refunded))
        assert is_renewal == t["is_renewal"]


def test_both_stripe_payload_shapes_are_read_and_every_invoice_knows_its_payment(built_world):
    # basil invoices name no PaymentIntent: the link comes from invoice_payment.paid (int_invoice_payment_links)
    rows = built_world.query("""
        select invoices.is_pre_basil_shape, count(*), count(invoices.subscription_id),
               count(purchases.payment_intent_id), count(invoices.payment_intent_id)
        from staging.stg_stripe__invoices as invoices
        join intermediate.int_purchases as purchases on purchases.purchase_id = invoices.invoice_id
        group by 1 order by 1""")
    assert [r[0] for r in rows] == [False, True]
    for pre_basil, n, with_sub, with_pi, named_in_payload in rows:
        assert n == with_sub == with_pi
        assert named_in_payload == (n if pre_basil else 0)


def test_conversions_carry_the_purchases_own_stripe_name_and_address_as_tiktok_documents_them(built_world):
    import json

    from reverse_etl.hashing import hash_compact, normalise_place, split_name

    rows = built_world.query("""
        select l.payload, p.customer_name, p.address_postal_code, p.address_city, p.address_country
        from reverse_etl.tiktok_deliveries l join intermediate.int_purchases p on p.purchase_id = l.event_id
        where l.status = 'dry_run'""")
    assert rows
    for payload, name, postal, city, country in rows:
        user = json.loads(payload)["user"]
        first, last = split_name(name)
        assert (user["first_name"], user["last_name"]) == (hash_compact(first), hash_compact(last))
        assert user["zip_code"] == hash_compact(postal) and len(user["zip_code"]) == 64
        assert (user["city"], user["country"]) == (normalise_place(city), normalise_place(country))
        assert name not in payload and postal not in payload
    coverage = built_world.query(
        "select min(share_with_name), min(share_with_address), "
        "min(revenue_share_with_address) from marts.report_match_quality"
    )[0]
    assert coverage == (1.0, 1.0, 1.0), "every simulated buyer gave Stripe a name and a billing address"


def test_junk_emails_and_shared_computers_are_refused_and_audited(built_world):
    reasons = dict(
        built_world.query(
            "select split_part(unused_reason, ':', 1), count(*) from intermediate.int_identity_edges "
            "where not is_used group by 1"
        )
    )
    assert reasons.get("blocked_value", 0) > 0 and reasons.get("shared_browser", 0) > 0
    assert (
        built_world.scalar(
            "select count(*) from intermediate.int_identity_components "
            "where node = 'email:test@test.com' and component_size > 1"
        )
        == 0
    )


def test_consent_denied_is_never_sendable_and_every_eligible_conversion_is_in_the_ledger(built_world):
    denied = built_world.query("""
        select c.event_id, l.status from marts.tiktok_conversions c
        left join reverse_etl.tiktok_deliveries l using (event_id) where not c.advertising_consent""")
    assert denied and all(status == "no_consent" for _, status in denied)
    rows = built_world.query("""
        select l.status, c.event_time >= now()::timestamp - interval 7 days as young, count(*)
        from marts.tiktok_conversions c left join reverse_etl.tiktok_deliveries l using (event_id)
        where c.eligible group by all""")
    assert {(status, young) for status, young, _ in rows} == {("dry_run", True), ("expired", False)}
    assert built_world.scalar("select count(*) - count(distinct event_id) from reverse_etl.tiktok_deliveries") == 0
    leaked = built_world.scalar("select count(*) from reverse_etl.tiktok_deliveries where payload like '%@%'")
    assert leaked == 0, "no clear-text email may leave in a payload"


SNAPSHOT = {
    "raw.stripe_events": "select event_id, _file, _line from raw.stripe_events order by all",
    "raw.tracking_events": "select message_id, _file, _line from raw.tracking_events order by all",
    "raw.quarantine": "select file, line_number, reason from raw.quarantine order by all",
    "marts.attributed_purchases": "select * from marts.attributed_purchases order by purchase_id",
    "marts.customer_journeys": "select * from marts.customer_journeys order by touch_id",
    "marts.tiktok_conversions": "select * from marts.tiktok_conversions order by event_id",
    "ledger": "select * exclude (payload) from reverse_etl.tiktok_deliveries order by event_id",
}


def _snapshot(ws):
    return {name: ws.query(sql) for name, sql in SNAPSHOT.items()}


def test_running_twice_changes_nothing_and_new_files_add_exactly_their_effect(workspace):
    workspace.add_world(visitors=400, seed=21)
    assert workspace.run().success
    before = _snapshot(workspace)
    again = workspace.run()
    assert again.success
    assert _snapshot(workspace) == before
    # nothing new: dbt is not run at all (the fixed cost), so nothing downstream of it materializes either
    rebuilt = {e.asset_key.path[0] for e in again.get_asset_materialization_events()}
    assert not rebuilt & {"staging", "intermediate", "marts", "reverse_etl"}, rebuilt

    # a new day's files: a second world and a file with one malformed line among good ones
    added = workspace.add_world(visitors=300, seed=22)
    good = [
        {
            "messageId": f"extra-{i}",
            "type": "page",
            "timestamp": "2026-07-01T10:00:00Z",
            "anonymousId": "b-extra",
            "context": {"page": {"url": "https://shop.example/"}},
        }
        for i in range(3)
    ]
    write_jsonl_atomic(
        workspace.landing / "tracking" / "manual" / "extra.jsonl", [good[0], "{broken", good[1], good[2]]
    )
    assert workspace.run().success
    after = _snapshot(workspace)

    new_stripe_ids = {r[0] for r in after["raw.stripe_events"]} - {r[0] for r in before["raw.stripe_events"]}
    unique_added = len({e for e in _stripe_ids(workspace, "sim-s22")})
    assert len(new_stripe_ids) == unique_added
    assert len(after["raw.tracking_events"]) == len(before["raw.tracking_events"]) + added["tracking_events"] + 3
    assert after["raw.quarantine"] == [("tracking/manual/extra.jsonl", 2, "invalid JSON")]

    old_ledger = {r[0]: r for r in before["ledger"]}
    new_ledger = {r[0]: r for r in after["ledger"]}
    assert all(new_ledger[k] == v for k, v in old_ledger.items()), "ledger rows already written never change"
    eligible_or_denied = {
        r[0]
        for r in workspace.query(
            "select event_id from marts.tiktok_conversions where eligible or ineligible_reason = 'no_consent'"
        )
    }
    assert set(new_ledger) == eligible_or_denied
    new_purchases = {t["purchase_id"] for t in workspace.truth_rows() if t["seed"] == 22}
    # a purchase's event id is its Stripe object's id or, bought through Checkout, its Checkout Session's
    purchase_of = dict(workspace.query("select event_id, purchase_id from marts.tiktok_conversions"))
    assert {purchase_of[e] for e in set(new_ledger) - set(old_ledger)} <= new_purchases

    # unrelated new data changed no old purchase's attribution: one version each in the history
    assert (
        workspace.scalar("select count(*) - count(distinct purchase_id) from marts.attributed_purchases_history") == 0
    )
    old_attribution = {r[0]: r[1:] for r in before["marts.attributed_purchases"]}
    now_attribution = {r[0]: r[1:] for r in workspace.query(SNAPSHOT["marts.attributed_purchases"])}
    columns = [c for c in _columns(workspace, "marts", "attributed_purchases")]
    ft = [columns.index(c) - 1 for c in ("first_touch_id", "first_touch_channel", "first_touch_campaign")]
    assert all([now_attribution[p][i] for i in ft] == [v[i] for i in ft] for p, v in old_attribution.items())

    # new data that links an old purchase to an earlier touch changes it, and the history shows when
    purchase_id, email, first_at = workspace.query("""
        select a.purchase_id, p.email_normalised, a.first_touch_at
        from marts.attributed_purchases a join intermediate.int_purchases p using (purchase_id)
        where a.first_touch_at is not null and a.first_touch_channel <> 'TikTok Ads'
          and p.email_normalised not like 'test@%'
        order by a.purchase_id limit 1""")[0]
    earlier = (first_at - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    context = {
        "page": {
            "url": "https://shop.example/?ttclid=E.C.P.late&utm_source=tiktok&utm_medium=paid_social"
            "&utm_campaign=tt_found_later",
            "path": "/",
        }
    }
    write_jsonl_atomic(
        workspace.landing / "tracking" / "manual" / "old-phone.jsonl",
        [
            {
                "messageId": "late-page",
                "type": "page",
                "timestamp": earlier,
                "anonymousId": "b-old-phone",
                "context": context,
            },
            {
                "messageId": "late-identify",
                "type": "identify",
                "timestamp": earlier,
                "anonymousId": "b-old-phone",
                "traits": {"email": email.upper()},
                "context": context,
            },
        ],
    )
    assert workspace.run().success
    versions = workspace.query(
        """
        select first_touch_campaign, dbt_valid_to is null from marts.attributed_purchases_history
        where purchase_id = ? order by dbt_valid_from""",
        [purchase_id],
    )
    assert len(versions) == 2 and versions[0][1] is False and versions[1] == ("tt_found_later", True)


def _stripe_ids(ws, folder):
    import json

    for path in (ws.landing / "stripe_events" / folder).glob("*.jsonl"):
        for line in path.read_text().splitlines():
            yield json.loads(line)["id"]


def test_make_run_exits_non_zero_and_says_why_when_a_step_fails(tmp_path):
    not_a_file = tmp_path / "warehouse-is-a-directory"
    not_a_file.mkdir()
    env = {
        **os.environ,
        "LANDING_DIR": str(tmp_path / "landing"),
        "WAREHOUSE_PATH": str(not_a_file),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "DAGSTER_LOG_LEVEL": "WARNING",
    }
    out = subprocess.run(
        [sys.executable, "-m", "orchestration.run"], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 1
    assert "FAILED in:" in out.stderr and "raw__stripe_events" in out.stderr
    assert str(not_a_file) in out.stderr


def test_the_worlds_conversions_reach_the_fake_tiktok_exactly_once_with_contents(built_world, tmp_path):
    import shutil

    import duckdb

    from fakes.tiktok import FakeTikTok
    from reverse_etl.deliver import DeliverySettings, SendPolicy, deliver

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(built_world.warehouse, copy)
    with FakeTikTok(access_tokens=["t"], pixel_codes=["P"]) as fake, duckdb.connect(str(copy)) as con:
        con.execute("delete from reverse_etl.tiktok_deliveries")  # the shared run expired the older ones
        fake.inject(script=[{"http": 502}, {"code": 40100}])
        deliver(
            con,
            DeliverySettings(
                access_token="t",
                pixel_code="P",
                api_base_url=fake.url,
                policy=SendPolicy(max_event_age_days=3650),
                backoff_base_seconds=0.01,
            ),
        )
        eligible = {
            r[0] for r in con.execute("select event_id from marts.tiktok_conversions where eligible").fetchall()
        }
        denied = {
            r[0]
            for r in con.execute(
                "select event_id from marts.tiktok_conversions where not advertising_consent"
            ).fetchall()
        }
        statuses = dict(con.execute("select status, count(*) from reverse_etl.tiktok_deliveries group by 1").fetchall())
    accepted = fake.accepted_ids()
    assert set(accepted) == eligible and not denied & set(accepted)
    assert all(n == 1 for n in accepted.values())
    assert statuses == {"sent": len(eligible), "no_consent": len(denied)}
    invoice_events = [e for i, e in fake.accepted_events.items() if i.startswith("in_")]
    assert invoice_events and all(e["properties"]["contents"][0]["content_id"] == "prod_pro" for e in invoice_events)
    assert all(e["properties"]["currency"] in ("USD", "EUR", "JPY", "KWD") for e in fake.accepted_events.values())


def test_a_subscription_payment_whose_invoice_link_is_missing_is_held_not_counted_twice(workspace):
    """Stripe as a webhook endpoint without invoice_payment.paid sends it (basil and later): the invoice names no
    PaymentIntent and the PaymentIntent no invoice. Such payments are held back, with a failing check that says
    which event to enable, and become part of their invoice once the links arrive (here, as a backfill would)."""
    import json

    from simulator.world import World, WorldConfig

    cfg = WorldConfig(visitors=400, seed=23, old_shape_share=0.0, invoice_payment_events=False)
    world = World(cfg).generate()
    write_jsonl_atomic(workspace.landing / "stripe_events" / "no-links" / "all.jsonl", [e for _, e in world.stripe])
    write_jsonl_atomic(workspace.landing / "tracking" / "no-links" / "all.jsonl", [m for _, m in world.tracking])
    truth = {t["purchase_id"]: t for t in world.truth}
    result = workspace.run()
    assert result.success

    purchases = {
        r[0]: r[1:] for r in workspace.query("select purchase_id, refunded_amount from marts.attributed_purchases")
    }
    assert set(purchases) <= set(truth), "no subscription payment became a second, standalone purchase"
    missing = set(truth) - set(purchases)
    assert not missing, "only held PaymentIntents are missing, and none of them is a purchase of the truth"
    # recorded under the purchase's id or, bought through Checkout, its Checkout Session's: never a PaymentIntent's
    sent_ids = {
        r[0]
        for r in workspace.query(
            "select coalesce(conversions.purchase_id, ledger.event_id) from reverse_etl.tiktok_deliveries as ledger "
            "left join marts.tiktok_conversions as conversions using (event_id)"
        )
    }
    assert sent_ids <= set(truth), "nothing was recorded for TikTok under a PaymentIntent id of an invoice"
    held = dict(
        workspace.query(
            "select hold_reason, count(*) from intermediate.int_standalone_payment_intents "
            "where hold_reason is not null group by 1"
        )
    )
    subscription_payments = sum(1 for t in truth.values() if t["kind"] == "invoice")
    assert sum(held.values()) == subscription_payments and held["no_invoice_payment_link"] > 0.9 * sum(held.values())
    check = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}["stripe_payments_linked"]
    assert not check.passed and "invoice_payment.paid" in check.description
    refunded_subscriptions = [p for p, t in truth.items() if t["kind"] == "invoice" and t["refunded_minor"]]
    assert refunded_subscriptions and all(float(purchases[p][0]) == 0 for p in refunded_subscriptions), (
        "without the link a PaymentIntent's refund cannot be netted against its invoice"
    )

    # the endpoint is subscribed to invoice_payment.paid and the period backfilled: the links arrive
    linked = World(WorldConfig(visitors=400, seed=23, old_shape_share=0.0)).generate()
    links = [e for _, e in linked.stripe if e["type"] == "invoice_payment.paid"]
    assert {e["data"]["object"]["invoice"] for e in links} == {p for p, t in truth.items() if t["kind"] == "invoice"}
    write_jsonl_atomic(workspace.landing / "stripe_events" / "late-links" / "links.jsonl", links)
    result = workspace.run()
    assert result.success
    check = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}["stripe_payments_linked"]
    assert check.passed
    found = {
        r[0]: r[1:]
        for r in workspace.query(
            "select purchase_id, amount, refunded_amount, currency from marts.attributed_purchases"
        )
    }
    assert set(found) == set(truth)
    for p, t in truth.items():
        scale = 10 ** EXPONENT[t["currency"]]
        assert float(found[p][1]) == pytest.approx(t.get("refunded_minor", 0) / scale), p
    assert (
        workspace.scalar(
            "select count(*) from intermediate.int_standalone_payment_intents where hold_reason is not null"
        )
        == 0
    )
    assert json.dumps(sorted(found)) == json.dumps(sorted(truth))


def test_files_holding_personal_data_are_readable_by_their_owner_only(tmp_path):
    """make run over a simulated world (the simulator's command and the run's own process): landing files, the
    warehouse and its folders are created 0600 / 0700, whatever the umask the user started with."""
    import stat

    env = {
        **os.environ,
        "LANDING_DIR": str(tmp_path / "landing"),
        "WAREHOUSE_PATH": str(tmp_path / "wh" / "w.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    for cmd in (
        [sys.executable, "-m", "simulator", "--visitors", "60", "--seed", "3"],
        [sys.executable, "-m", "orchestration.run"],
    ):
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=600, preexec_fn=lambda: os.umask(0o022)
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    created = [
        p
        for p in [*(tmp_path / "landing").rglob("*"), *(tmp_path / "wh").rglob("*"), tmp_path / "wh"]
        if not p.name.startswith(".")
    ]
    assert any(p.suffix == ".duckdb" for p in created) and any(p.suffix == ".jsonl" for p in created)
    loose = {
        str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in created
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert not loose, f"readable by others: {loose}"
