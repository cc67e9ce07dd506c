"""Every Stripe object the simulator renders, checked against a schema Stripe publishes: the typed resource classes
of the pinned stripe-python (16.1.0, generated from Stripe's OpenAPI spec for API version 2026-10-28.endive; each
class lists every field of that version). A field we made up, or one Stripe dropped, fails here.

Pre-basil objects (2024-06-20) carry the fields basil removed, as Stripe's changelog lists them; nothing else of
theirs may differ. Includable fields (an invoice's ``payments``, a charge's ``refunds``, ...) never appear in an
event: only a request that expands them returns them.
"""

from __future__ import annotations

import typing
from collections import Counter

import pytest
import stripe
from stripe._list_object import ListObject
from stripe._stripe_object import StripeObject

from simulator import stripe_objects as so
from simulator.world import World, WorldConfig

RESOURCES = {
    "invoice": stripe.Invoice,
    "invoice_payment": stripe.InvoicePayment,
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "customer": stripe.Customer,
    "subscription": stripe.Subscription,
    "checkout.session": stripe.checkout.Session,
    "refund": stripe.Refund,
    "line_item": stripe.InvoiceLineItem,
    "subscription_item": stripe.SubscriptionItem,
    "price": stripe.Price,
    "plan": stripe.Plan,
}
# Removed by 2025-03-31.basil ("Adds support for multiple (partial) payments on invoices"; stripe-python 12.0.0's
# release notes: invoice on Charge and PaymentIntent, the invoice line's price / plan / type moved to pricing and
# parent); rendered only in the pre-basil shape. Each entry: (object, dotted path of the field).
REMOVED_BY_BASIL = {
    ("invoice", "payment_intent"),
    ("invoice", "charge"),
    ("invoice", "paid"),
    ("invoice", "subscription"),
    ("invoice", "lines.total_count"),
    ("payment_intent", "invoice"),
    ("charge", "invoice"),
    ("invoice", "lines.data.type"),
    ("invoice", "lines.data.subscription_item"),
    ("invoice", "lines.data.price"),
    ("invoice", "lines.data.plan"),
}
LIST_FIELDS = {"object", "data", "has_more", "url"}


def _fields(cls: type) -> dict[str, object]:
    hints: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        hints.update(
            {
                k: v
                for k, v in getattr(klass, "__annotations__", {}).items()
                if not str(v).startswith("typing.ClassVar") and not k.startswith("_")
            }
        )
    return hints


def _classes(annotation) -> list[type]:
    """The StripeObject classes (and ListObject item classes, as ('list', cls)) an annotation may hold."""
    found: list = []
    origin = typing.get_origin(annotation)
    if origin is ListObject:
        for item in _classes(typing.get_args(annotation)[0]):
            found.append(("list", item))
        return found
    if isinstance(annotation, typing.ForwardRef):
        resolved = getattr(stripe, annotation.__forward_arg__, None)
        return [resolved] if isinstance(resolved, type) else []
    if isinstance(annotation, str):
        resolved = getattr(stripe, annotation, None)
        return [resolved] if isinstance(resolved, type) else []
    if isinstance(annotation, type) and issubclass(annotation, StripeObject):
        return [annotation]
    for arg in typing.get_args(annotation):
        found += _classes(arg)
    return found


def unknown_fields(obj: dict, cls: type, path: str = "") -> list[str]:
    """Dotted paths of ``obj`` that ``cls`` (a stripe-python class) does not have, recursing into typed sub-objects
    and lists. Untyped maps (metadata) are not walked."""
    fields = _fields(cls)
    out = []
    for key, value in obj.items():
        where = f"{path}{key}"
        if key not in fields:
            out.append(where)
            continue
        if not isinstance(value, dict):
            continue
        for target in _classes(fields[key]):
            if isinstance(target, tuple):  # a ListObject of target[1]
                out += [f"{where}.{k}" for k in value if k not in LIST_FIELDS]
                for item in value.get("data") or []:
                    if isinstance(item, dict):
                        out += unknown_fields(item, target[1], f"{where}.data.")
                break
            if (
                issubclass(target, StripeObject)
                and target.__module__.startswith("stripe")
                and not target.__name__.startswith("Untyped")
            ):
                out += unknown_fields(value, target, f"{where}.")
                break
    return out


def _world_events(api_version: str) -> list[dict]:
    world = World(WorldConfig(visitors=400, seed=5, api_version=api_version, old_shape_share=0.3)).generate()
    return [e for _, e in world.stripe]


def test_the_simulator_renders_the_newest_version_stripe_python_is_generated_for():
    from stripe._api_version import _ApiVersion

    assert so.NEW_API_VERSION == _ApiVersion.CURRENT == WorldConfig().api_version
    assert so.NEW_API_VERSION.endswith(_ApiVersion.CURRENT_MAJOR)


@pytest.mark.parametrize("api_version", so.BASIL_AND_LATER)
def test_every_simulated_object_has_only_the_fields_stripe_publishes(api_version):
    events = _world_events(api_version)
    kinds: Counter = Counter()
    problems: set[str] = set()
    for e in events:
        assert set(e) <= set(_fields(stripe.Event)), e["id"]
        obj = e["data"]["object"]
        kind = obj["object"]
        kinds[kind] += 1
        assert kind in RESOURCES, f"no schema for simulated {kind!r}"
        extra = unknown_fields(obj, RESOURCES[kind])
        if so.is_pre_basil(e["api_version"]):
            extra = [f for f in extra if (kind, f) not in REMOVED_BY_BASIL]
        else:
            assert e["api_version"] == api_version
        problems |= {f"{kind}.{f} ({e['api_version']})" for f in extra}
        for includable in so.INCLUDABLE.get(kind, ()):
            assert includable not in obj, f"{kind}.{includable} is includable: no webhook carries it"
    assert not problems, f"fields Stripe does not send: {sorted(problems)}"
    assert {
        "invoice",
        "invoice_payment",
        "payment_intent",
        "charge",
        "customer",
        "subscription",
        "checkout.session",
        "refund",
    } <= set(kinds)


def test_a_made_up_field_is_caught():
    inv = so.invoice(
        in_id="in_1",
        created=1,
        cus_id="cus_1",
        email="a@b.co",
        name="A B",
        phone=None,
        country="US",
        amount_minor=100,
        currency="usd",
        billing_reason="manual",
        subscription_id="sub_1",
        sub_item_id="si_1",
        line_id="il_1",
        price_id="price_1",
        product_id="prod_1",
        product_name="P",
        period_start=1,
        period_end=2,
        pi_id="pi_1",
        charge_id="ch_1",
        api_version=so.NEW_API_VERSION,
    )
    assert unknown_fields(inv, stripe.Invoice) == []
    inv["payment_intent"] = "pi_1"  # what pre-basil fakes used to render
    inv["lines"]["data"][0]["pricing"]["price_details"]["sku"] = "x"
    assert unknown_fields(inv, stripe.Invoice) == ["lines.data.pricing.price_details.sku", "payment_intent"]
