"""The Events API pull and the backfill, with stripe-python over real HTTP against the fake Stripe API."""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest

from fakes.stripe import FakeStripe
from ingestion.landing import list_landing_files
from ingestion.stripe_pull import PullSettings, PullState, StripePullError, backfill, backfill_event, pull_events
from simulator.stripe_objects import NEW_API_VERSION, OLD_API_VERSION, customer, event, invoice, invoice_payment
from tests.conftest import Workspace
from tests.services import ROOT

NOW = int(time.time())


def cus_event(i: int, created: int, event_id: str | None = None) -> dict:
    obj = customer(
        cus_id=f"cus_{i:05d}",
        created=created,
        email=f"c{i}@example.com",
        name="C",
        phone=None,
        country="US",
        api_version=NEW_API_VERSION,
    )
    return event(event_id or f"evt_{i:05d}", "customer.created", created, obj, NEW_API_VERSION)


def settings(fake: FakeStripe, landing: Path, **kw) -> PullSettings:
    return PullSettings(
        api_key=fake.api_key,
        api_base=fake.url,
        landing_dir=landing,
        **({"requests_per_second": 1000, "backoff_seconds": 0.01} | kw),
    )


def landed_ids(landing: Path) -> list[str]:
    return [
        json.loads(line)["id"]
        for p in list_landing_files(landing, "stripe_events")
        for line in p.read_text().splitlines()
    ]


def test_the_fake_pages_newest_first_and_filters_as_stripe_documents():
    with FakeStripe() as fake:
        fake.add_events([cus_event(i, NOW - 100 + i) for i in range(30)])
        auth = {"Authorization": f"Bearer {fake.api_key}"}
        get = lambda q: httpx.get(f"{fake.url}/v1/events?{q}", headers=auth)  # noqa: E731
        first = get("limit=10").json()
        assert [e["id"] for e in first["data"]] == [f"evt_{i:05d}" for i in range(29, 19, -1)]
        assert first["has_more"] is True
        back = get("limit=5&ending_before=evt_00019").json()
        assert [e["id"] for e in back["data"]] == [f"evt_{i:05d}" for i in range(24, 19, -1)]
        assert [e["id"] for e in get(f"created[gte]={NOW - 72}&created[lt]={NOW - 70}").json()["data"]] == [
            "evt_00029",
            "evt_00028",
        ]
        assert get("types[0]=invoice.*").json()["data"] == []
        assert get("limit=101").status_code == 400
        both = get("starting_after=evt_00001&ending_before=evt_00002")
        assert both.status_code == 400 and "only specify one" in both.json()["error"]["message"]
        assert httpx.get(f"{fake.url}/v1/events").status_code == 401


def test_pull_across_pages_with_same_second_events_and_faults_loses_and_duplicates_nothing(tmp_path):
    landing = tmp_path / "landing"
    # 1,050 events, 50 per second: every page boundary falls inside a second
    events = [cus_event(i, NOW - 3000 + i // 50) for i in range(1050)]
    with FakeStripe() as fake:
        fake.add_events(events)
        fake.inject(script=[{"http": 500}, {"http": 429}, {"http": 503}], rate_limit_per_second=6)
        first = pull_events(settings(fake, landing))
        assert first.events_written == 1050 and first.retries >= 3
        assert sorted(landed_ids(landing)) == sorted(e["id"] for e in events)
        # more events in the cursor's own second, and one listed late with an older time (inside the overlap)
        cursor = first.cursor_after
        late = [cus_event(2000 + i, cursor, f"evt_same_second_{i}") for i in range(5)] + [
            cus_event(3000, cursor - 120, "evt_listed_late")
        ]
        fake.add_events(late)
        fake.inject(script=[{"http": 429}, {"http": 500}])
        second = pull_events(settings(fake, landing))
        assert second.events_written == 6
        assert second.duplicates_skipped > 0  # the overlap was listed again and skipped
        third = pull_events(settings(fake, landing))
        assert third.events_written == 0
        stats = fake.stats()
    ids = landed_ids(landing)
    assert len(ids) == len(set(ids)) == 1056
    assert stats["faults"].get("429", stats["faults"].get(429, 0)) >= 2


def test_pulled_invoices_carry_every_line_even_when_the_event_truncated_them(tmp_path):
    full = invoice(
        in_id="in_many",
        created=NOW - 60,
        cus_id="cus_1",
        email="a@example.com",
        name="A",
        phone=None,
        country="US",
        amount_minor=2500,
        currency="usd",
        billing_reason="manual",
        subscription_id="sub_1",
        sub_item_id="si_1",
        line_id="il_0",
        price_id="price_1",
        product_id="prod_1",
        product_name="Item",
        period_start=NOW - 60,
        period_end=NOW - 60,
        pi_id="pi_1",
        charge_id="ch_1",
        api_version=NEW_API_VERSION,
    )
    lines = [dict(full["lines"]["data"][0], id=f"il_{i:02d}", amount=100) for i in range(25)]
    full["lines"] = {"object": "list", "data": lines, "has_more": False, "total_count": 25}
    truncated = dict(
        full,
        lines={
            "object": "list",
            "data": lines[:10],
            "has_more": True,
            "total_count": 25,
            "url": "/v1/invoices/in_many/lines",
        },
    )
    with FakeStripe() as fake:
        fake.add_events([event("evt_inv", "invoice.paid", NOW - 50, truncated, NEW_API_VERSION)])
        fake.add_objects([full])
        result = pull_events(settings(fake, tmp_path))
    assert result.invoice_lines_completed == 15
    (pulled,) = [json.loads(p.read_text()) for p in list_landing_files(tmp_path, "stripe_events")]
    got = pulled["data"]["object"]["lines"]
    assert [x["id"] for x in got["data"]] == [f"il_{i:02d}" for i in range(25)] and got["has_more"] is False


def test_a_cursor_older_than_the_retention_is_reported_until_a_backfill_covers_it(tmp_path):
    landing = tmp_path / "landing"
    forty_days_ago = NOW - 40 * 86400
    PullState(cursor=forty_days_ago).save(landing / "_state" / "stripe_events_pull.json")
    with FakeStripe() as fake:
        fake.add_events([cus_event(1, NOW - 35 * 86400), cus_event(2, NOW - 10)])
        fake.add_objects([cus_event(1, NOW - 35 * 86400)["data"]["object"], cus_event(2, NOW - 10)["data"]["object"]])
        result = pull_events(settings(fake, landing))
        assert result.new_gap and result.new_gap["from"] == forty_days_ago - 300
        assert result.events_written == 1  # what Stripe still has is pulled all the same
        env = {**os.environ, "STRIPE_API_KEY": fake.api_key, "STRIPE_API_BASE": fake.url, "LANDING_DIR": str(landing)}
        out = subprocess.run(
            [sys.executable, "-m", "ingestion.stripe_pull", "pull"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 3, out.stdout + out.stderr
        assert "older than Stripe's 30-day event retention" in out.stdout
        assert "backfill --start" in out.stdout
        start = (datetime.fromtimestamp(forty_days_ago, UTC) - timedelta(days=1)).date()
        done = backfill(settings(fake, landing), start)
        assert done.gaps_closed and done.objects["customers"] == 2
        assert pull_events(settings(fake, landing)).open_gaps == []
    assert "cus_00001" in {
        json.loads(line)["data"]["object"]["id"]
        for p in list_landing_files(landing, "stripe_events")
        for line in p.read_text().splitlines()
    }


def test_backfilled_objects_become_events_of_their_state_with_stable_ids():
    paid = {"id": "in_1", "object": "invoice", "status": "paid", "created": 100, "status_transitions": {"paid_at": 160}}
    refunded = {
        "id": "ch_1",
        "object": "charge",
        "status": "succeeded",
        "created": 100,
        "amount_refunded": 5,
        "refunds": {"data": [{"id": "re_1", "created": 900}]},
    }
    e1, e2 = backfill_event(paid, NEW_API_VERSION, 1, "/v1/invoices"), backfill_event(paid, NEW_API_VERSION, 2, "x")
    assert (e1["type"], e1["created"], e1["id"]) == ("invoice.paid", 160, e2["id"])
    assert e1["id"].startswith("evt_bf_")
    assert backfill_event(dict(paid, status="void"), NEW_API_VERSION, 1, "x")["id"] != e1["id"]
    r = backfill_event(refunded, NEW_API_VERSION, 1, "/v1/charges")
    assert (r["type"], r["created"]) == ("charge.refunded", 900)


def test_the_pull_asset_is_skipped_without_a_key_and_fails_its_check_on_a_gap(tmp_path):
    from orchestration.defs.stripe import stripe_events_pull
    from orchestration.resources import LandingZoneResource, StripeResource

    landing = tmp_path / "landing"
    skipped = dg.materialize(
        [stripe_events_pull],
        resources={"stripe": StripeResource(), "landing_zone": LandingZoneResource(path=str(landing))},
    )
    assert skipped.success
    PullState(cursor=NOW - 45 * 86400).save(landing / "_state" / "stripe_events_pull.json")
    with FakeStripe() as fake:
        fake.add_events([cus_event(1, NOW - 5)])
        result = dg.materialize(
            [stripe_events_pull],
            resources={
                "stripe": StripeResource(api_key=fake.api_key, api_base=fake.url, requests_per_second=1000),
                "landing_zone": LandingZoneResource(path=str(landing)),
            },
            raise_on_error=False,
        )
    (check,) = result.get_asset_check_evaluations()
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.ERROR
    assert "backfill" in check.metadata["what_to_do"].value
    (mat,) = result.get_asset_materialization_events()
    assert mat.materialization.metadata["events_landed"].value == 1


@pytest.mark.slow
def test_a_world_pulled_and_backfilled_gives_the_same_purchases_as_its_events(built_world, tmp_path):
    """The shared world's Stripe events served by the fake; the last 30 days pulled, everything older
    backfilled from the object lists; the warehouse built from that holds the same purchases and money."""
    ws = Workspace(tmp_path)
    shutil.copytree(built_world.landing / "tracking", ws.landing / "tracking")
    ws.truth.parent.mkdir(parents=True)
    shutil.copy(built_world.truth, ws.truth)
    with FakeStripe() as fake:
        fake.load_landing(built_world.landing)
        s = settings(fake, ws.landing)
        pulled = pull_events(s)
        assert 0 < pulled.events_written < sum(1 for _ in fake.events)
        oldest = min(e["created"] for e in fake.events)
        done = backfill(s, datetime.fromtimestamp(oldest, UTC).date())
        assert done.objects["invoices"] > 0 and done.objects["charges"] > 0
    assert ws.run().success
    expected = {
        r[0]: r[1:]
        for r in built_world.query(
            "select purchase_id, amount, refunded_amount, net_amount, currency, is_renewal, stripe_customer_id "
            "from marts.attributed_purchases"
        )
    }
    found = {
        r[0]: r[1:]
        for r in ws.query(
            "select purchase_id, amount, refunded_amount, net_amount, currency, is_renewal, stripe_customer_id "
            "from marts.attributed_purchases"
        )
    }
    assert found == expected
    shapes = ws.query(
        "select is_pre_basil_shape, count(*) from staging.stg_stripe__invoices "
        "where last_event_id like 'evt_bf_%' group by 1"
    )
    # backfilled objects come in the client's (current) API version, pulled events in their own
    assert len(shapes) == 1 and shapes[0][0] is False and shapes[0][1] > 0
    # history's invoice -> PaymentIntent links came with the backfilled invoices (payments expanded), so no
    # payment is held back for want of one
    assert ws.scalar("select count(*) from staging.stg_stripe__invoice_payments where found_in = 'invoice'") > 0
    assert (
        ws.scalar(
            "select count(*) from intermediate.int_standalone_payment_intents "
            "where hold_reason = 'no_invoice_payment_link'"
        )
        == 0
    )


def test_the_fake_returns_includable_fields_only_when_expanded_and_the_backfill_completes_them(tmp_path):
    from simulator.stripe_objects import invoice_payment

    inv = invoice(
        in_id="in_parts",
        created=NOW - 600,
        cus_id="cus_1",
        email="a@example.com",
        name="A",
        phone=None,
        country="US",
        amount_minor=1200,
        currency="usd",
        billing_reason="manual",
        subscription_id="sub_1",
        sub_item_id="si_1",
        line_id="il_1",
        price_id="price_1",
        product_id="prod_1",
        product_name="Plan",
        period_start=NOW - 600,
        period_end=NOW,
        pi_id="pi_0",
        charge_id="ch_0",
        api_version=NEW_API_VERSION,
    )
    parts = [
        invoice_payment(
            inpay_id=f"inpay_{i:02d}",
            created=NOW - 500 + i,
            in_id="in_parts",
            amount_minor=100,
            currency="usd",
            pi_id=f"pi_{i:02d}",
            paid_at=NOW - 500 + i,
            api_version=NEW_API_VERSION,
        )
        for i in range(12)
    ]  # an invoice paid in 12 parts: more than an expanded list holds
    with FakeStripe() as fake:
        fake.add_objects([inv, *parts])
        client = httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.api_key}"})
        plain = client.get("/v1/invoices").json()["data"][0]
        assert "payments" not in plain
        expanded = client.get("/v1/invoices", params={"expand[]": "data.payments"}).json()["data"][0]
        assert len(expanded["payments"]["data"]) == 10 and expanded["payments"]["has_more"] is True
        listed = client.get("/v1/invoice_payments", params={"invoice": "in_parts", "limit": 100}).json()
        assert len(listed["data"]) == 12
        assert "payments" not in client.get("/v1/invoices/in_parts").json()
        retrieved = client.get("/v1/invoices/in_parts", params={"expand[]": "payments"}).json()
        assert len(retrieved["payments"]["data"]) == 10 and retrieved["id"] == "in_parts"
        assert client.get("/v1/invoice_payments/inpay_03").json()["payment"]["payment_intent"] == "pi_03"
        assert client.get("/v1/invoices/in_nope").status_code == 404
        done = backfill(
            settings(fake, tmp_path / "landing"),
            datetime.fromtimestamp(NOW - 3600, UTC).date(),
            resources=("invoices",),
        )
    assert done.objects == {"invoices": 1}
    (landed,) = [
        json.loads(line) for f in (tmp_path / "landing").rglob("*.jsonl") for line in f.read_text().splitlines()
    ]
    payments = landed["data"]["object"]["payments"]
    assert payments["has_more"] is False
    assert sorted(p["payment"]["payment_intent"] for p in payments["data"]) == [f"pi_{i:02d}" for i in range(12)]


def test_old_and_new_payload_shapes_stage_the_same_and_jpy_and_kwd_convert_right(workspace):
    """One invoice rendered at a pre-basil and at the current API version stages to the same rows;
    zero-decimal and three-decimal currencies convert by their exponent."""
    rows = []
    for version, suffix in ((OLD_API_VERSION, "old"), (NEW_API_VERSION, "new")):
        for currency, minor in (("jpy", 4900), ("kwd", 12345), ("usd", 4900)):
            key = f"{suffix}_{currency}"
            inv = invoice(
                in_id=f"in_{key}",
                created=NOW - 3600,
                cus_id=f"cus_{currency}",
                email="a@example.com",
                name="A",
                phone=None,
                country="JP",
                amount_minor=minor,
                currency=currency,
                billing_reason="subscription_create",
                subscription_id=f"sub_{currency}",
                sub_item_id=f"si_{currency}",
                line_id=f"il_{currency}",
                price_id=f"price_{currency}",
                product_id=f"prod_{currency}",
                product_name="Plan",
                period_start=NOW - 3600,
                period_end=NOW,
                pi_id=f"pi_{currency}",
                charge_id=f"ch_{currency}",
                api_version=version,
            )
            rows.append(json.dumps(event(f"evt_{key}", "invoice.paid", NOW - 3500, inv, version)))
            if version == NEW_API_VERSION:  # since basil only the invoice payment names the PaymentIntent
                pay = invoice_payment(
                    inpay_id=f"inpay_{key}",
                    created=NOW - 3600,
                    in_id=f"in_{key}",
                    amount_minor=minor,
                    currency=currency,
                    pi_id=f"pi_{currency}",
                    paid_at=NOW - 3500,
                    api_version=version,
                )
                rows.append(json.dumps(event(f"evt_pay_{key}", "invoice_payment.paid", NOW - 3500, pay, version)))
    (workspace.landing / "stripe_events").mkdir(parents=True)
    (workspace.landing / "stripe_events" / "shapes.jsonl").write_text("\n".join(rows) + "\n")
    workspace.dbt(
        "build", "--select", "+stg_stripe__invoice_lines", "+int_invoice_payment_links", "+stg_stripe__refunds"
    )
    staged = workspace.query("""
        select i.invoice_id, i.subscription_id, p.payment_intent_id, i.currency, i.amount_paid, i.paid_at,
               l.price_id, l.product_id, l.amount, l.unit_amount, l.quantity, i.is_pre_basil_shape
        from staging.stg_stripe__invoices i join staging.stg_stripe__invoice_lines l using (invoice_id)
        join intermediate.int_invoice_payment_links p using (invoice_id)
        order by i.invoice_id""")
    by_shape = {True: {}, False: {}}
    for r in staged:
        by_shape[r[-1]][r[0].split("_", 2)[2]] = r[1:-1]
    assert by_shape[True] == by_shape[False] and len(by_shape[True]) == 3
    amounts = {k: (float(v[3]), float(v[7]), float(v[8])) for k, v in by_shape[False].items()}
    assert amounts == {"jpy": (4900.0, 4900.0, 4900.0), "kwd": (12.345, 12.345, 12.345), "usd": (49.0, 49.0, 49.0)}


def test_the_backfill_job_lands_history_from_a_start_date(tmp_path):
    from orchestration.defs.stripe import stripe_backfill
    from orchestration.resources import LandingZoneResource, StripeResource

    landing = tmp_path / "landing"
    old = NOW - 90 * 86400
    with FakeStripe() as fake:
        fake.add_objects([cus_event(1, old)["data"]["object"], cus_event(2, NOW - 200 * 86400)["data"]["object"]])
        start = datetime.fromtimestamp(old - 86400, UTC).date().isoformat()
        result = stripe_backfill.execute_in_process(
            run_config={"ops": {"stripe_backfill_op": {"config": {"start_date": start}}}},
            resources={
                "stripe": StripeResource(api_key=fake.api_key, api_base=fake.url, requests_per_second=1000),
                "landing_zone": LandingZoneResource(path=str(landing)),
            },
        )
        assert result.success
        bad = stripe_backfill.execute_in_process(
            run_config={"ops": {"stripe_backfill_op": {"config": {"start_date": "last spring"}}}},
            resources={
                "stripe": StripeResource(api_key=fake.api_key, api_base=fake.url),
                "landing_zone": LandingZoneResource(path=str(landing)),
            },
            raise_on_error=False,
        )
    assert not bad.success
    landed = [
        json.loads(line) for p in list_landing_files(landing, "stripe_events") for line in p.read_text().splitlines()
    ]
    assert [(e["type"], e["data"]["object"]["id"]) for e in landed] == [("customer.created", "cus_00001")]
    (obs,) = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert obs.event_specific_data.asset_observation.metadata["backfilled_customers"].value == 1


def test_a_pull_limited_to_some_event_types_must_take_the_invoice_payment_links(monkeypatch):
    base = {"STRIPE_API_KEY": "sk_test_x"}
    for name, value in base.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STRIPE_PULL_TYPES", "invoice.paid,charge.refunded")
    with pytest.raises(StripePullError, match="invoice_payment.paid"):
        PullSettings.from_env()
    for ok in ("invoice.paid,invoice_payment.paid", "invoice.*,invoice_payment.*", ""):
        monkeypatch.setenv("STRIPE_PULL_TYPES", ok)
        assert PullSettings.from_env() is not None
