"""Property: whatever lines land beside a world (tracking messages and Stripe events with hostile values in every
field staging reads), the load and the dbt build succeed and the world's own answers do not change."""

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.landing import write_jsonl_atomic
from tests.conftest import Workspace

pytestmark = pytest.mark.slow

ANSWERS = (
    "select purchase_id, customer_id, amount, refunded_amount, first_touch_channel, first_touch_campaign, "
    "first_touch_ttclid from marts.attributed_purchases order by purchase_id"
)
CONVERSIONS = (
    "select event_id, ttclid, ttp, emails, phones, advertising_consent, eligible "
    "from marts.tiktok_conversions order by event_id"
)

# text with what breaks parsers: separators, percent signs, control and non-BMP characters, quotes (the known
# troublemakers drawn more often than arbitrary text)
KNOWN_BAD = [
    "%",
    "%E0%A4%A",
    "%zz",
    "%C3%28",
    "a:b",
    "browser:x",
    "\u0000",
    "\ud7ff",
    "😀",
    "\\",
    '"',
    "+",
    "&=",
    "test@test.com",
    "+1 (415) 555-0100",
    "00",
    "9" * 40,
    "-1",
    "1e309",
    "NaN",
    "true",
    "",
]
hostile_text = st.one_of(st.sampled_from(KNOWN_BAD), st.sampled_from(KNOWN_BAD), st.text(max_size=40))
hostile_value = st.one_of(
    hostile_text,
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(hostile_text, max_size=3),
    st.dictionaries(hostile_text, hostile_text, max_size=3),
)
# mostly times the loader accepts, so the lines reach staging
times = st.one_of(
    st.sampled_from(
        ["2026-07-01T10:00:00Z", "2026-07-01T10:00:00.123+02:00", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]
    ),
    st.datetimes().map(lambda t: t.isoformat() + "Z"),
    st.sampled_from(["2026-02-30T00:00:00Z", "2026-W27-3"]),
    hostile_text,
)
epochs = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), hostile_text, st.none(), st.floats(allow_nan=True)
)


@st.composite
def tracking_message(draw, i: int = 0):
    url = draw(
        st.one_of(
            hostile_text,
            st.builds(
                lambda q: "https://shop.example/?" + q,
                st.lists(
                    st.tuples(
                        st.sampled_from(["ttclid", "utm_source", "utm_campaign", "gclid", "utm_medium"]), hostile_text
                    ),
                    max_size=4,
                ).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv)),
            ),
        )
    )
    return {
        "messageId": f"fuzz-{draw(st.uuids())}",
        "type": draw(st.sampled_from(["page", "identify", "track"])),
        "timestamp": draw(times),
        "anonymousId": draw(hostile_text.filter(bool)),
        "userId": draw(hostile_value),
        "event": draw(st.one_of(st.just("Lead"), hostile_value)),
        "receivedAt": draw(times),
        "traits": {"email": draw(hostile_value), "phone": draw(hostile_value), "firstName": draw(hostile_value)},
        "context": {
            "page": {"url": url, "referrer": draw(hostile_value)},
            "userAgent": draw(hostile_value),
            "ip": draw(hostile_value),
            "cookies": {"_ttp": draw(hostile_value)},
            "campaign": draw(
                st.one_of(
                    st.none(), st.dictionaries(st.sampled_from(["source", "medium", "name", "content"]), hostile_value)
                )
            ),
            "consent": {"categoryPreferences": {"advertising": draw(hostile_value)}},
        },
    }


@st.composite
def stripe_event(draw):
    kind = draw(
        st.sampled_from(
            [
                "invoice",
                "charge",
                "payment_intent",
                "checkout.session",
                "customer",
                "invoice_payment",
                "refund",
                "subscription",
            ]
        )
    )
    obj = {
        "id": draw(hostile_text.filter(bool)),
        "object": kind,
        "created": draw(epochs),
        "customer": draw(hostile_value),
        "currency": draw(hostile_value),
        "amount": draw(epochs),
        "amount_paid": draw(epochs),
        "amount_refunded": draw(epochs),
        "amount_total": draw(epochs),
        "status": draw(st.one_of(st.sampled_from(["paid", "succeeded", "complete"]), hostile_value)),
        "payment_intent": draw(hostile_value),
        "invoice": draw(hostile_value),
        "email": draw(hostile_value),
        "status_transitions": {"paid_at": draw(epochs)},
        "lines": {
            "data": [
                {
                    "id": draw(hostile_text),
                    "amount": draw(epochs),
                    "quantity": draw(epochs),
                    "period": {"start": draw(epochs)},
                }
            ]
        },
        "payments": {
            "data": [
                {
                    "id": draw(hostile_text),
                    "invoice": draw(hostile_value),
                    "payment": {"payment_intent": draw(hostile_value)},
                    "status": "paid",
                    "amount_paid": draw(epochs),
                }
            ]
        },
        "customer_details": {"email": draw(hostile_value), "address": draw(hostile_value)},
    }
    return {
        "id": f"evt_fuzz_{draw(st.uuids())}",
        "object": "event",
        "api_version": draw(hostile_text),
        "created": draw(st.integers(min_value=1_600_000_000, max_value=1_900_000_000)),
        "type": draw(st.sampled_from([f"{kind}.created", "invoice.paid", "charge.refunded"])),
        "data": {"object": obj},
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("fuzz_baseline"))
    ws.add_world(visitors=120, seed=51)
    ws.dbt("build")
    return ws, ws.query(ANSWERS), ws.query(CONVERSIONS)


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    messages=st.lists(tracking_message(), min_size=20, max_size=40),
    events=st.lists(stripe_event(), min_size=10, max_size=20),
)
def test_hostile_lines_never_fail_the_build_nor_change_the_worlds_answers(baseline, messages, events):
    world, answers, conversions = baseline
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        ws = Workspace(Path(tmp))
        shutil.copytree(world.landing, ws.landing)
        write_jsonl_atomic(ws.landing / "tracking" / "fuzz" / "m.jsonl", [json.dumps(m) for m in messages])
        write_jsonl_atomic(ws.landing / "stripe_events" / "fuzz" / "e.jsonl", [json.dumps(e) for e in events])
        ws.dbt("build")  # asserts dbt's exit code: no expression over landed data raised
        fuzz_ids = {e["data"]["object"]["id"] for e in events}
        assert [r for r in ws.query(ANSWERS) if r[0] not in fuzz_ids] == answers
        assert [r for r in ws.query(CONVERSIONS) if r[0] not in fuzz_ids] == conversions
