"""Stripe objects and events as Stripe renders them in a webhook or an event list, in the pre-basil shape
(2024-06-20) and in each major version from 2025-03-31.basil to the one the pinned stripe-python is generated for
(``NEW_API_VERSION``, the simulator's default).

What basil changed for the objects rendered here (Stripe's changelog, "Adds support for multiple (partial)
payments on invoices", and stripe-python 12's release notes): the invoice lost ``payment_intent``, ``charge`` and
``paid``; PaymentIntents and Charges lost ``invoice``; the one place that ties a payment to its invoice is the
InvoicePayment object (``invoice_payment.paid`` events, ``GET /v1/invoice_payments``, or the invoice's
``payments``, an includable field that only a request expanding it returns: webhook payloads never carry it).
An invoice's subscription moved under ``parent.subscription_details`` and a line's price under
``pricing.price_details``; lists lost ``total_count``. Clover, dahlia and endive changed nothing in the fields
rendered here, so those versions render as basil does, each under its own version string.

Includable fields (``INCLUDABLE``) are never rendered in an event: the fake API adds them only when a request
expands them. ``tests/test_stripe_fidelity.py`` holds every rendered field to stripe-python's typed classes.
"""

from __future__ import annotations

from typing import Any

OLD_API_VERSION = "2024-06-20"
# the first version of each major release since basil; the newest is stripe-python 16.1.0's (stripe/_api_version.py)
BASIL_AND_LATER = ("2025-03-31.basil", "2025-09-30.clover", "2026-03-25.dahlia", "2026-10-28.endive")
NEW_API_VERSION = BASIL_AND_LATER[-1]
# fields Stripe returns only when a request expands them (never in a webhook payload)
INCLUDABLE = {
    "invoice": ("payments",),
    "charge": ("refunds",),
    "checkout.session": ("line_items",),
    "customer": ("sources", "subscriptions", "tax_ids", "cash_balance", "invoice_credit_balance"),
}


def is_pre_basil(api_version: str) -> bool:
    return api_version < "2025-03-31"


def event(
    event_id: str, event_type: str, created: int, obj: dict, api_version: str, previous_attributes: dict | None = None
) -> dict:
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def address(
    country: str,
    postal_code: str | None = None,
    city: str | None = None,
    state: str | None = None,
    line1: str | None = None,
) -> dict:
    return {"city": city, "country": country, "line1": line1, "line2": None, "postal_code": postal_code, "state": state}


def customer(
    *,
    cus_id: str,
    created: int,
    email: str,
    name: str,
    phone: str | None,
    country: str,
    api_version: str,
    addr: dict | None = None,
) -> dict:
    """Same shape in every API version rendered."""
    return {
        "id": cus_id,
        "object": "customer",
        "address": addr or address(country),
        "created": created,
        "currency": None,
        "description": None,
        "email": email,
        "livemode": False,
        "metadata": {},
        "name": name,
        "phone": phone,
    }


def checkout_session(
    *,
    cs_id: str,
    created: int,
    mode: str,
    amount_minor: int,
    currency: str,
    cus_id: str | None,
    email: str,
    typed_email: str,
    name: str,
    phone: str | None,
    country: str,
    client_reference_id: str | None,
    invoice_id: str | None,
    subscription_id: str | None,
    payment_intent_id: str | None,
    api_version: str,
    addr: dict | None = None,
) -> dict:
    """Same shape in every API version rendered (line items are includable: not in the payload)."""
    return {
        "id": cs_id,
        "object": "checkout.session",
        "amount_subtotal": amount_minor,
        "amount_total": amount_minor,
        "client_reference_id": client_reference_id,
        "created": created,
        "currency": currency,
        "customer": cus_id,
        "customer_creation": "always" if mode == "subscription" else "if_required",
        "customer_details": {
            "address": addr or address(country),
            "email": typed_email,
            "name": name,
            "phone": phone,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": email if cus_id is None else None,
        "expires_at": created + 86400,
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "mode": mode,
        "payment_intent": payment_intent_id,
        "payment_status": "paid",
        "status": "complete",
        "subscription": subscription_id,
        "success_url": "https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}",
    }


def invoice(
    *,
    in_id: str,
    created: int,
    cus_id: str,
    email: str,
    name: str,
    phone: str | None,
    country: str,
    amount_minor: int,
    currency: str,
    billing_reason: str,
    subscription_id: str,
    sub_item_id: str,
    line_id: str,
    price_id: str,
    product_id: str,
    product_name: str,
    period_start: int,
    period_end: int,
    pi_id: str,
    charge_id: str,
    api_version: str,
    addr: dict | None = None,
) -> dict:
    """An invoice as a webhook carries it. Since basil it names neither its PaymentIntent nor its charge (see
    ``invoice_payment``), and ``payments`` is includable, so it is not here."""
    common = {
        "id": in_id,
        "object": "invoice",
        "account_country": "US",
        "amount_due": amount_minor,
        "amount_paid": amount_minor,
        "amount_remaining": 0,
        "attempt_count": 1,
        "attempted": True,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": cus_id,
        "customer_address": addr or address(country),
        "customer_email": email,
        "customer_name": name,
        "customer_phone": phone,
        "livemode": False,
        "metadata": {},
        "number": None,
        "period_start": period_start,
        "period_end": period_end,
        "status": "paid",
        "status_transitions": {"finalized_at": created, "paid_at": created + 2},
        "subtotal": amount_minor,
        "total": amount_minor,
    }
    line: dict[str, Any] = {
        "id": line_id,
        "object": "line_item",
        "amount": amount_minor,
        "currency": currency,
        "description": f"1 × {product_name}",
        "metadata": {},
        "period": {"start": period_start, "end": period_end},
        "quantity": 1,
    }
    if is_pre_basil(api_version):
        line.update(
            {
                "type": "subscription",
                "subscription": subscription_id,
                "subscription_item": sub_item_id,
                "price": {
                    "id": price_id,
                    "object": "price",
                    "currency": currency,
                    "product": product_id,
                    "unit_amount": amount_minor,
                    "recurring": {"interval": "month"},
                },
                "plan": {"id": price_id, "object": "plan", "amount": amount_minor, "product": product_id},
            }
        )
        common.update({"subscription": subscription_id, "payment_intent": pi_id, "charge": charge_id, "paid": True})
    else:
        line.update(
            {
                "parent": {
                    "type": "subscription_item_details",
                    "invoice_item_details": None,
                    "subscription_item_details": {"subscription": subscription_id, "subscription_item": sub_item_id},
                },
                "pricing": {
                    "type": "price_details",
                    "price_details": {"price": price_id, "product": product_id},
                    "unit_amount_decimal": str(amount_minor),
                },
            }
        )
        common.update(
            {
                "parent": {
                    "type": "subscription_details",
                    "quote_details": None,
                    "subscription_details": {"metadata": {}, "subscription": subscription_id},
                },
            }
        )
    common["lines"] = {"object": "list", "data": [line], "has_more": False, "url": f"/v1/invoices/{in_id}/lines"}
    if is_pre_basil(api_version):
        common["lines"]["total_count"] = 1
    return common


def invoice_payment(
    *,
    inpay_id: str,
    created: int,
    in_id: str,
    amount_minor: int,
    currency: str,
    pi_id: str,
    paid_at: int,
    api_version: str,
) -> dict:
    """The InvoicePayment (basil and later): the one object that says which PaymentIntent paid which invoice."""
    return {
        "id": inpay_id,
        "object": "invoice_payment",
        "amount_paid": amount_minor,
        "amount_requested": amount_minor,
        "created": created,
        "currency": currency,
        "invoice": in_id,
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": pi_id},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": paid_at},
    }


def refund(
    *, re_id: str, created: int, amount_minor: int, currency: str, ch_id: str, pi_id: str, api_version: str
) -> dict:
    return {
        "id": re_id,
        "object": "refund",
        "amount": amount_minor,
        "charge": ch_id,
        "created": created,
        "currency": currency,
        "metadata": {},
        "payment_intent": pi_id,
        "reason": "requested_by_customer",
        "status": "succeeded",
    }


def payment_intent(
    *,
    pi_id: str,
    created: int,
    amount_minor: int,
    currency: str,
    cus_id: str | None,
    receipt_email: str | None,
    charge_id: str,
    invoice_id: str | None,
    description: str | None,
    api_version: str,
) -> dict:
    obj = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount_minor,
        "amount_received": amount_minor,
        "currency": currency,
        "customer": cus_id,
        "created": created,
        "description": description,
        "latest_charge": charge_id,
        "livemode": False,
        "metadata": {},
        "receipt_email": receipt_email,
        "status": "succeeded",
    }
    if is_pre_basil(api_version):
        obj["invoice"] = invoice_id
    return obj


def charge(
    *,
    ch_id: str,
    created: int,
    amount_minor: int,
    currency: str,
    cus_id: str | None,
    pi_id: str,
    email: str,
    name: str,
    phone: str | None,
    country: str,
    invoice_id: str | None,
    refunded_minor: int,
    api_version: str,
    addr: dict | None = None,
) -> dict:
    """A charge as a webhook carries it: ``refunds`` is includable (since 2022-11-15), so it is not here."""
    obj = {
        "id": ch_id,
        "object": "charge",
        "amount": amount_minor,
        "amount_captured": amount_minor,
        "amount_refunded": refunded_minor,
        "billing_details": {"address": addr or address(country), "email": email, "name": name, "phone": phone},
        "captured": True,
        "created": created,
        "currency": currency,
        "customer": cus_id,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": pi_id,
        "receipt_email": email,
        "refunded": refunded_minor >= amount_minor,
        "status": "succeeded",
    }
    if is_pre_basil(api_version):
        obj["invoice"] = invoice_id
    return obj


def subscription(
    *,
    sub_id: str,
    created: int,
    cus_id: str,
    sub_item_id: str,
    price_id: str,
    product_id: str,
    amount_minor: int,
    currency: str,
    status: str,
    canceled_at: int | None,
    api_version: str,
) -> dict:
    """Same shape in every API version rendered."""
    return {
        "id": sub_id,
        "object": "subscription",
        "created": created,
        "start_date": created,
        "currency": currency,
        "customer": cus_id,
        "status": status,
        "canceled_at": canceled_at,
        "ended_at": canceled_at,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested" if canceled_at else None,
        },
        "items": {
            "object": "list",
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub_id}",
            "data": [
                {
                    "id": sub_item_id,
                    "object": "subscription_item",
                    "quantity": 1,
                    "price": {
                        "id": price_id,
                        "object": "price",
                        "currency": currency,
                        "product": product_id,
                        "unit_amount": amount_minor,
                        "recurring": {"interval": "month"},
                    },
                }
            ],
        },
        "livemode": False,
        "metadata": {},
    }
