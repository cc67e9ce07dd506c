"""Browser pixel and server events of one purchase are one event to TikTok: the tracker's helper fires the pixel's
Purchase on Checkout's success page under the event id the pipeline sends for the same purchase (its Checkout
Session's id), in headless Chromium with TikTok's pixel stubbed; and events already sent under an earlier id keep it."""

import gzip
import json
from datetime import date, timedelta
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

import duckdb
import pytest

from fakes.tiktok import FakeTikTok
from ingestion.collector import TRACKER_JS
from ingestion.landing import STRIPE_DIR, list_landing_files
from ingestion.loader import ensure_schema
from reverse_etl.deliver import deliver
from reverse_etl.settings import DeliverySettings, SendPolicy
from tests.conftest import Workspace
from tests.static_site import serve
from tests.test_tracker_browser import CHROMIUM, FLAGS, _browser_or_skip

# TikTok's base code, reduced to what matters here: until the SDK loads, ttq is a queue that records each call
# with its arguments (ttq.track(event, properties, {event_id}))
PIXEL_STUB = """<script>
window.ttq = [];
["page", "track", "identify"].forEach(function (m) {
  window.ttq[m] = function () { window.ttq.push([m].concat(Array.prototype.slice.call(arguments))); };
});
</script>"""


def _success_site(consent: str) -> ThreadingHTTPServer:
    tracker = TRACKER_JS.read_bytes()
    page = (
        f"<html><head><title>Thanks</title>{PIXEL_STUB}"
        f"<script>window.ttattrConfig = {{writeKey: 'wk', autoPage: false, advertisingConsent: {consent}}};</script>"
        '<script src="/tracker.js"></script></head><body>Thanks</body></html>'
    ).encode()

    return serve({"/thanks": (page, "text/html"), "/tracker.js": (tracker, "text/javascript")})


def _pixel_calls(success_urls: list[str], consent: str = "true") -> list[list]:
    """Each success URL opened in Chromium, where the shop's page calls ttattr.tiktokPurchase(); what the stub saw."""
    sync_playwright = _browser_or_skip()
    shop = _success_site(consent)
    base = f"http://127.0.0.1:{shop.server_address[1]}"
    seen = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                for url in success_urls:
                    parts = urlsplit(url)
                    page.goto(f"{base}{parts.path}?{parts.query}")
                    page.wait_for_function("!!(window.ttattr && window.ttattr.tiktokPurchase)")
                    returned = page.evaluate("ttattr.tiktokPurchase({value: 29.0, currency: 'usd'})")
                    calls = page.evaluate("Array.prototype.slice.call(window.ttq)")
                    seen.append({"returned": returned, "calls": calls})
                assert errors == []
            finally:
                browser.close()
    finally:
        shop.shutdown()
    return seen


def _checkout_sessions(landing) -> dict[str, dict]:
    """The Checkout Sessions the simulated Stripe account completed, as Stripe sent them, by id."""
    sessions = {}
    for path in list_landing_files(landing, STRIPE_DIR):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt") as f:
            lines = f.read().splitlines()
        for line in lines:
            event = json.loads(line)
            if event["type"] == "checkout.session.completed":
                sessions[event["data"]["object"]["id"]] = event["data"]["object"]
    return sessions


def _redirect(session: dict) -> str:
    # what Stripe does on success: {CHECKOUT_SESSION_ID} in the success_url becomes the session's id
    assert "{CHECKOUT_SESSION_ID}" in session["success_url"]
    return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A shop whose last purchases are recent, its ledger as an earlier version of the pipeline left it (one
    subscription sent under its invoice id, another only previewed in a dry run), run through the pipeline and
    delivered to a fake TikTok: what TikTok received is what the pixel has to match."""
    ws = Workspace(tmp_path_factory.mktemp("pixel_shop"))
    ws.add_world(visitors=250, seed=41, end_date=date.today())
    sessions = _checkout_sessions(ws.landing)
    invoices = sorted(s["invoice"] for s in sessions.values() if s["mode"] == "subscription")
    assert len(invoices) >= 2
    sent_before, previewed = invoices[:2]
    ws.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(ws.warehouse)) as con:
        ensure_schema(con)
        con.executemany(
            "insert into reverse_etl.tiktok_deliveries (event_id, event_name, status, attempts, recorded_at) "
            "values (?, 'Purchase', ?, ?, now())",
            [[sent_before, "sent", 1], [previewed, "dry_run", 0]],
        )
    assert ws.run().success
    with FakeTikTok(access_tokens=["t"], pixel_codes=["P"]) as fake, duckdb.connect(str(ws.warehouse)) as con:
        settings = DeliverySettings(
            access_token="t", pixel_code="P", api_base_url=fake.url, policy=SendPolicy(max_event_age_days=3650)
        )
        con.execute("delete from reverse_etl.tiktok_deliveries where status = 'expired'")  # older than a week
        deliver(con, settings)
        accepted = dict(fake.accepted_events)
    return ws, sessions, accepted, sent_before, previewed


def test_the_pixel_on_the_success_page_fires_under_the_event_id_the_server_sends(shop):
    ws, sessions, accepted, _, _ = shop
    # one subscription bought through Checkout (its purchase is the first invoice) and one one-time payment, each
    # as TikTok received it from the server
    by_mode = {}
    for session in sessions.values():
        if session["id"] in accepted:
            by_mode.setdefault(session["mode"], session)
    assert set(by_mode) == {"subscription", "payment"}, "the server sent no Checkout purchase of each kind"

    seen = _pixel_calls([_redirect(s) for s in by_mode.values()])
    for session, browser in zip(by_mode.values(), seen, strict=True):
        server_event = accepted[session["id"]]
        purchase = session["invoice"] if session["mode"] == "subscription" else session["id"]
        assert server_event["properties"]["order_id"] == purchase
        assert browser["returned"] == session["id"]
        assert browser["calls"] == [
            ["track", server_event["event"], {"value": 29.0, "currency": "USD"}, {"event_id": session["id"]}]
        ]


def test_no_pixel_event_without_consent_or_for_an_id_the_server_never_sends(shop):
    _, sessions, _, _, _ = shop
    session = next(iter(sessions.values()))
    denied = _pixel_calls([_redirect(session)], consent="false")
    assert denied == [{"returned": None, "calls": []}], "advertising consent was denied"
    forged = _pixel_calls(
        [
            "https://shop.example/thanks?session_id=in_1QAbc",
            "https://shop.example/thanks?session_id=cs_test_a%22%3E%3Cscript%3E",
            "https://shop.example/thanks?session_id={CHECKOUT_SESSION_ID}",
            "https://shop.example/thanks",
        ]
    )
    assert forged == [{"returned": None, "calls": []}] * 4


def test_a_purchase_already_sent_under_its_invoice_id_keeps_that_id(shop):
    """Events sent before the Checkout Session became the event id stay under the id TikTok already has: sending
    the same purchase again under the session's id would count it twice. A dry run sent nothing, so its purchase
    takes the session's id."""
    ws, sessions, accepted, sent_before, previewed = shop
    session_of = {s["invoice"]: s["id"] for s in sessions.values() if s["mode"] == "subscription"}
    event_ids = dict(ws.query("select purchase_id, event_id from marts.tiktok_conversions"))
    assert event_ids[sent_before] == sent_before, "sent under the invoice id: it stays so"
    assert event_ids[previewed] == session_of[previewed], "only previewed: the Checkout Session's id"
    assert all(event_ids[i] == s for i, s in session_of.items() if i != sent_before and i in event_ids)
    assert sent_before not in accepted and session_of[sent_before] not in accepted, "the purchase sent twice"
    assert ws.scalar("select count(*) - count(distinct purchase_id) from marts.tiktok_conversions") == 0


def _hold_back(landing, session_ids: set[str]) -> list[str]:
    """Take the events of these Checkout Sessions out of the landing zone, as if Stripe had not sent them yet (it
    does not order checkout.session.completed and invoice.paid); returns their lines."""
    taken = []
    for path in list_landing_files(landing, STRIPE_DIR):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt") as f:
            lines = f.read().splitlines()
        kept = [line for line in lines if json.loads(line)["data"]["object"].get("id") not in session_ids]
        if len(kept) < len(lines):
            taken += [line for line in lines if line not in kept]
            with opener(path, "wt") as f:
                f.write("".join(line + "\n" for line in kept))
    return taken


def _accepted(ws, now) -> dict:
    """What a delivery at ``now`` sends (the pipeline's own runs were dry runs: nothing old is held as expired)."""
    with FakeTikTok(access_tokens=["t"], pixel_codes=["P"]) as fake, duckdb.connect(str(ws.warehouse)) as con:
        con.execute("delete from reverse_etl.tiktok_deliveries where status = 'expired'")
        settings = SendPolicy(max_event_age_days=3650)
        deliver(
            con, DeliverySettings(access_token="t", pixel_code="P", api_base_url=fake.url, policy=settings, now=now)
        )
        return dict(fake.accepted_events)


def test_an_invoice_that_lands_before_its_checkout_session_waits_for_it_and_goes_out_once_under_its_id(tmp_path):
    from reverse_etl.candidates import checkout_waits_due

    ws = Workspace(tmp_path)
    ws.add_world(visitors=250, seed=43, end_date=date.today())
    subscriptions = sorted(
        (s for s in _checkout_sessions(ws.landing).values() if s["mode"] == "subscription"), key=lambda s: s["created"]
    )
    late = subscriptions[-1]  # its session comes after its invoice
    never = next(s for s in reversed(subscriptions) if s["created"] < late["created"] - 600)  # its never comes
    held_lines = _hold_back(ws.landing, {late["id"], never["id"]})
    assert held_lines
    assert ws.run().success

    def row(invoice):
        return ws.query(
            "select event_id, awaits_checkout_session, event_time from marts.tiktok_conversions where purchase_id = ?",
            [invoice],
        )

    [(event_id, awaits, late_at)] = row(late["invoice"])
    assert (event_id, awaits) == (late["invoice"], True), "no session yet: the invoice's id, waiting"
    [(_, _, never_at)] = row(never["invoice"])
    # a moment after the late purchase: it waits; the other has waited long enough and goes under its invoice id
    first = _accepted(ws, now=late_at + timedelta(seconds=10))
    assert late["invoice"] not in first and late["id"] not in first
    assert never["invoice"] in first, "a first invoice no session joins is sent once its wait is over"
    assert (
        ws.scalar(
            "select count(*) from reverse_etl.tiktok_deliveries where event_id = ? and status <> 'dry_run'",
            [late["invoice"]],
        )
        == 0
    ), "nothing recorded that would freeze the invoice id"
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        assert checkout_waits_due(con, late_at + timedelta(seconds=10), 120)[0] == 0
        assert checkout_waits_due(con, late_at + timedelta(seconds=130), 120)[0] == 1, "the retry sensor's cue"
        assert checkout_waits_due(con, late_at + timedelta(seconds=130), 0)[0] == 0
    # the session lands; the next run gives the purchase the session's id, which is what the pixel used
    late_file = ws.landing / STRIPE_DIR / "late" / "sessions.jsonl"
    late_file.parent.mkdir(parents=True)
    late_file.write_text("".join(line + "\n" for line in held_lines if late["id"] in line))
    assert ws.run().success
    assert [r[:2] for r in row(late["invoice"])] == [(late["id"], False)]
    second = _accepted(ws, now=late_at + timedelta(seconds=300))
    assert late["id"] in second and late["invoice"] not in second
    assert never["invoice"] not in second and never["id"] not in second, "sent once"
