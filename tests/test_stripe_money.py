"""Stripe money counted once on the shapes basil and later send, at the level analysts see it (int_purchases,
attributed_purchases' source): hand-made events, each as Stripe renders it, through the loader and a dbt build."""

import json
import time

import pytest

from simulator import stripe_objects as so

pytestmark = pytest.mark.slow
V = so.NEW_API_VERSION
NOW = int(time.time()) - 7200


def _invoice(in_id: str, amount: int, cus: str = "cus_1") -> dict:
    return so.invoice(
        in_id=in_id,
        created=NOW,
        cus_id=cus,
        email="a@example.com",
        name="Ana Smith",
        phone=None,
        country="US",
        amount_minor=amount,
        currency="usd",
        billing_reason="subscription_cycle",
        subscription_id="sub_1",
        sub_item_id="si_1",
        line_id="il_1",
        price_id="price_1",
        product_id="prod_1",
        product_name="Plan",
        period_start=NOW,
        period_end=NOW + 86400,
        pi_id="unused",
        charge_id="unused",
        api_version=V,
        addr=so.address("US", postal_code="94107", city="San Francisco", state="CA"),
    )


def _pi(pi_id: str, amount: int, ch_id: str, cus: str = "cus_1", at: int = NOW) -> dict:
    return so.payment_intent(
        pi_id=pi_id,
        created=at,
        amount_minor=amount,
        currency="usd",
        cus_id=cus,
        receipt_email=None,
        charge_id=ch_id,
        invoice_id=None,
        description=None,
        api_version=V,
    )


def _charge(ch_id: str, pi_id: str | None, amount: int, refunded: int = 0, cus: str = "cus_1") -> dict:
    return so.charge(
        ch_id=ch_id,
        created=NOW,
        amount_minor=amount,
        currency="usd",
        cus_id=cus,
        pi_id=pi_id,
        email="a@example.com",
        name="Ana Smith",
        phone=None,
        country="US",
        invoice_id=None,
        refunded_minor=refunded,
        api_version=V,
    )


def _payment(inpay: str, in_id: str, amount: int, pi_id: str | None = None, ch_id: str | None = None) -> dict:
    obj = so.invoice_payment(
        inpay_id=inpay,
        created=NOW,
        in_id=in_id,
        amount_minor=amount,
        currency="usd",
        pi_id=pi_id,
        paid_at=NOW,
        api_version=V,
    )
    if ch_id:
        obj["payment"] = {"type": "charge", "charge": ch_id}
    return obj


def _land(workspace, events: list[tuple[str, dict, int]]) -> None:
    lines = [json.dumps(so.event(f"evt_{i}", kind, at, obj, V)) for i, (kind, obj, at) in enumerate(events)]
    folder = workspace.landing / "stripe_events"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hand.jsonl").write_text("\n".join(lines) + "\n")


def test_partial_payments_charge_links_and_expanded_objects_count_each_payment_once(workspace):
    # in_parts: paid by two PaymentIntents, one refunded (the refund names only the PaymentIntent)
    # in_charge: paid by a bare charge (payment.type charge), refunded
    # in_expanded: linked by a payment whose PaymentIntent a request expanded into an object
    # pi_alone: a one-off payment nothing claims, another customer, long settled: a purchase of its own
    expanded = _payment("inpay_x", "in_expanded", 900, pi_id="pi_x")
    expanded["payment"]["payment_intent"] = _pi("pi_x", 900, "ch_x")
    events = [
        ("invoice.paid", _invoice("in_parts", 3000), NOW),
        ("payment_intent.succeeded", _pi("pi_a", 1000, "ch_a"), NOW),
        ("payment_intent.succeeded", _pi("pi_b", 2000, "ch_b"), NOW),
        ("charge.refunded", _charge("ch_b", "pi_b", 2000, refunded=500), NOW + 60),
        ("invoice_payment.paid", _payment("inpay_a", "in_parts", 1000, pi_id="pi_a"), NOW),
        ("invoice_payment.paid", _payment("inpay_b", "in_parts", 2000, pi_id="pi_b"), NOW),
        ("invoice.paid", _invoice("in_charge", 700), NOW),
        ("charge.refunded", _charge("ch_c", None, 700, refunded=700), NOW + 60),
        ("invoice_payment.paid", _payment("inpay_c", "in_charge", 700, ch_id="ch_c"), NOW),
        ("invoice.paid", _invoice("in_expanded", 900), NOW),
        ("payment_intent.succeeded", _pi("pi_x", 900, "ch_x"), NOW),
        ("invoice_payment.paid", expanded, NOW),
        # in_refund_event: refunded, and only the refund.created event has arrived so far (no charge.refunded)
        ("invoice.paid", _invoice("in_refund_event", 1500), NOW),
        ("invoice_payment.paid", _payment("inpay_r", "in_refund_event", 1500, pi_id="pi_r"), NOW),
        (
            "refund.created",
            so.refund(
                re_id="re_r",
                created=NOW + 60,
                amount_minor=600,
                currency="usd",
                ch_id="ch_r",
                pi_id="pi_r",
                api_version=V,
            ),
            NOW + 60,
        ),
        ("payment_intent.succeeded", _pi("pi_alone", 4200, "ch_alone", cus="cus_2", at=NOW - 86400), NOW - 86400),
        ("charge.succeeded", _charge("ch_alone", "pi_alone", 4200, cus="cus_2"), NOW - 86400),
    ]
    _land(workspace, events)
    workspace.dbt("build", "--select", "+int_purchases", "+int_standalone_payment_intents")
    got = {
        r[0]: tuple(float(x) for x in r[1:3]) + r[3:]
        for r in workspace.query(
            "select purchase_id, amount, refunded_amount, purchase_type, customer_name, address_postal_code "
            "from intermediate.int_purchases"
        )
    }
    assert got == {
        "in_parts": (30.0, 5.0, "invoice", "Ana Smith", "94107"),
        "in_charge": (7.0, 7.0, "invoice", "Ana Smith", "94107"),
        "in_expanded": (9.0, 0.0, "invoice", "Ana Smith", "94107"),
        "in_refund_event": (15.0, 6.0, "invoice", "Ana Smith", "94107"),
        "pi_alone": (42.0, 0.0, "payment_intent", "Ana Smith", None),
    }
    assert (
        workspace.scalar(
            "select count(*) from intermediate.int_standalone_payment_intents where hold_reason is not null"
        )
        == 0
    )


def test_an_unlinked_look_alike_is_held_and_a_different_amount_is_not(workspace):
    events = [
        ("invoice.paid", _invoice("in_1", 2900), NOW),
        # the invoice's payment, its invoice_payment.paid never sent: same customer, amount, a minute apart
        ("payment_intent.succeeded", _pi("pi_1", 2900, "ch_1", at=NOW - 60), NOW - 60),
        # the same customer's one-off purchase of another amount the same day: a purchase
        ("payment_intent.succeeded", _pi("pi_2", 4900, "ch_2", at=NOW - 3 * 3600), NOW - 3 * 3600),
        # a newer event makes both settled (60 minutes by the newest Stripe event)
        (
            "customer.created",
            so.customer(
                cus_id="cus_9",
                created=NOW + 7200,
                email="b@example.com",
                name="B",
                phone=None,
                country="US",
                api_version=V,
            ),
            NOW + 7200,
        ),
    ]
    _land(workspace, events)
    workspace.dbt("build", "--select", "+int_purchases", "+int_standalone_payment_intents")
    held = workspace.query(
        "select payment_intent_id, hold_reason, suspected_invoice_id "
        "from intermediate.int_standalone_payment_intents order by 1"
    )
    assert held == [("pi_1", "no_invoice_payment_link", "in_1"), ("pi_2", None, None)]
    assert {r[0] for r in workspace.query("select purchase_id from intermediate.int_purchases")} == {"in_1", "pi_2"}


def _listed(items: list[dict], url: str) -> dict:
    """An includable list as an expanding request returns it (what the backfill lands)."""
    return {"object": "list", "data": items, "has_more": False, "total_count": len(items), "url": url}


def test_refunds_and_invoice_payments_listed_in_their_parent_are_incremental_and_equal_a_rebuild(workspace):
    """Backfilled charges and invoices list their refunds and invoice payments; a later webhook of the same charge or
    invoice lists none (webhooks never carry the includable lists), so the objects known only from the list are
    gone from the latest state. The incremental build of both models takes the new states only and gives what a
    full rebuild gives: the rows of the lists that changed, and no others."""

    def charge_with(ch_id: str, refunds: list[str] | None, at: int) -> dict:
        obj = _charge(ch_id, f"pi_{ch_id}", 2000, refunded=500 if refunds else 0)
        if refunds is not None:
            obj["refunds"] = _listed(
                [
                    so.refund(
                        re_id=r, created=at, amount_minor=500, currency="usd", ch_id=ch_id, pi_id=None, api_version=V
                    )
                    for r in refunds
                ],
                f"/v1/charges/{ch_id}/refunds",
            )
        return obj

    def invoice_with(in_id: str, payments: list[str] | None) -> dict:
        obj = _invoice(in_id, 3000)
        if payments is not None:
            obj["payments"] = _listed(
                [_payment(p, in_id, 3000, pi_id=f"pi_{p}") for p in payments], "/v1/invoice_payments"
            )
        return obj

    def land(name: str, events: list[tuple[str, dict, int]]) -> None:
        lines = [json.dumps(so.event(f"evt_{name}_{i}", kind, at, obj, V)) for i, (kind, obj, at) in enumerate(events)]
        folder = workspace.landing / "stripe_events"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")

    models = "stg_stripe__refunds stg_stripe__invoice_payments"

    def rows() -> set[tuple]:
        return set(
            workspace.query("select * exclude (built_at, loaded_at) from staging.stg_stripe__refunds")
            + workspace.query("select * exclude (built_at, loaded_at) from staging.stg_stripe__invoice_payments")
        )

    land(
        "backfill",
        [
            ("charge.refunded", charge_with("ch_1", ["re_1"], NOW), NOW),
            ("charge.refunded", charge_with("ch_kept", ["re_kept"], NOW), NOW),
            ("invoice.paid", invoice_with("in_1", ["inpay_1"]), NOW),
            ("invoice.paid", invoice_with("in_kept", ["inpay_kept"]), NOW),
        ],
    )
    workspace.dbt("build", "--select", "+stg_stripe__refunds +stg_stripe__invoice_payments")
    assert {r[0] for r in rows()} == {"re_1", "re_kept", "inpay_1", "inpay_kept"}
    land(
        "later",
        [
            ("charge.updated", charge_with("ch_1", None, NOW), NOW + 600),
            ("invoice.updated", invoice_with("in_1", None), NOW + 600),
            ("charge.refunded", charge_with("ch_2", ["re_2"], NOW + 600), NOW + 600),
            ("invoice.paid", invoice_with("in_2", ["inpay_2"]), NOW + 600),
        ],
    )
    out = workspace.dbt("build", "--select", "+stg_stripe__refunds +stg_stripe__invoice_payments")
    assert "ERROR=0" in out
    incremental = rows()
    assert {r[0] for r in incremental} == {"re_kept", "re_2", "inpay_kept", "inpay_2"}
    workspace.dbt("run", "--full-refresh", "--select", models)
    assert rows() == incremental
