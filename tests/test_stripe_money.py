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
