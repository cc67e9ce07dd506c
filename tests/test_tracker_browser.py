"""The browser tracker in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), against a local
site and the collector, both over real HTTP on 127.0.0.1."""

import json
import os
import shutil
import time
from http.server import ThreadingHTTPServer

import httpx
import pytest

from ingestion.landing import list_landing_files
from tests.services import service
from tests.static_site import serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
WRITE_KEY = "wk_browser"
TTP = "2F7hTtpCookieValue01"


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover
        reason = f"playwright is not installed ({exc}); run make install"
    else:
        if CHROMIUM:
            return sync_playwright
        reason = "Chromium is not installed: apt-get install -y chromium"
    if os.environ.get("CI"):
        pytest.fail(f"the browser test must run in CI: {reason}")
    pytest.skip(reason)


def site(collector_url: str, consent: str) -> ThreadingHTTPServer:
    """A shop with a landing page, a sign-up page with a lead form, and a thank-you page, each with the snippet."""
    snippet = (
        f'<script>window.ttattrConfig = {{endpoint: "{collector_url}", writeKey: "{WRITE_KEY}", '
        f"advertisingConsent: {consent}}};</script>"
        f'<script src="{collector_url}/tracker.js"></script>'
    )
    pages = {
        "/": f"<html><head><title>Shop</title>{snippet}</head><body><h1>Shop</h1>"
        '<a id="next" href="/signup">Sign up</a>'
        '<a id="buy" href="https://buy.stripe.com/test_abc">Buy</a></body></html>',
        "/signup": f"<html><head><title>Sign up</title>{snippet}</head><body>"
        '<form id="lead" action="/thanks" method="get">'
        '<input type="email" name="email"><input type="tel" name="phone">'
        '<button id="send" type="submit">Send</button></form></body></html>',
        "/thanks": f"<html><head><title>Thanks</title>{snippet}</head><body>Thanks</body></html>",
    }

    html = "text/html; charset=utf-8"
    # what TikTok's pixel leaves on the shop's own domain
    return serve(
        {path: (body.encode(), html) for path, body in pages.items()},
        {"Set-Cookie": f"_ttp={TTP}; Path=/; Max-Age=3600"},
    )


def visit(tmp_path, consent: str) -> list[dict]:
    sync_playwright = _browser_or_skip()
    env = {"COLLECTOR_WRITE_KEYS": WRITE_KEY, "LANDING_DIR": str(tmp_path / "landing")}
    with service("ingestion.collector", env) as col:
        shop = site(col.url, consent)
        base = f"http://127.0.0.1:{shop.server_address[1]}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
                try:
                    page = browser.new_context().new_page()
                    page.goto(
                        f"{base}/?ttclid=E.C.P.tt123&utm_source=tiktok&utm_medium=paid"
                        f"&utm_campaign=bf_sale&utm_content=ad_42"
                    )
                    page.wait_for_function("window.ttattr && window.ttattr.browserId()")
                    buy_href = page.get_attribute("#buy", "href")
                    browser_id = page.evaluate("window.ttattr.browserId()")
                    assert buy_href.endswith(f"client_reference_id={browser_id}")
                    page.click("#next")
                    page.wait_for_url(f"{base}/signup")
                    page.fill("input[type=email]", "  Ann.Lee@Example.com ")
                    page.fill("input[type=tel]", "(415) 555-0100")
                    page.click("#send")
                    page.wait_for_url(f"{base}/thanks*")
                    # 3 page views, an identify and a Lead
                    deadline = time.time() + 20
                    while httpx.get(f"{col.url}/healthz").json()["accepted"] < 5 and time.time() < deadline:
                        time.sleep(0.1)
                finally:
                    browser.close()
        finally:
            shop.shutdown()
    return [
        json.loads(line)
        for p in list_landing_files(tmp_path / "landing", "tracking")
        for line in p.read_text().splitlines()
    ]


@pytest.mark.slow
def test_a_tiktok_ad_visitor_is_tracked_across_pages_and_through_a_lead_form(tmp_path):
    events = visit(tmp_path, consent="undefined")
    kinds = sorted((e["type"], e.get("event") or e["context"]["page"]["path"]) for e in events)
    assert kinds == [
        ("identify", "/signup"),
        ("page", "/"),
        ("page", "/signup"),
        ("page", "/thanks"),
        ("track", "Lead"),
    ]
    browser_ids = {e["anonymousId"] for e in events}
    assert len(browser_ids) == 1 and len(browser_ids.pop()) >= 32
    landing, signup = [e for e in events if e["type"] == "page"][:2]
    assert "ttclid=E.C.P.tt123" in landing["context"]["page"]["url"]
    assert landing["context"]["campaign"] == {
        "source": "tiktok",
        "medium": "paid",
        "name": "bf_sale",
        "content": "ad_42",
    }
    for e in events:  # the landing's click id and UTMs ride along on every later page, and the _ttp cookie
        assert e["context"]["attribution"]["clickIds"] == {"ttclid": "E.C.P.tt123"}
        assert e["context"]["attribution"]["campaign"]["name"] == "bf_sale"
        assert e["context"]["cookies"]["_ttp"] == TTP
        assert e["context"]["userAgent"] and e["context"]["ip"] == "127.0.0.1"
        assert "consent" not in e["context"]
    assert "campaign" not in signup["context"], "a later page's own URL has no UTMs"
    (identify,) = [e for e in events if e["type"] == "identify"]
    (lead,) = [e for e in events if e["type"] == "track"]
    for e in (identify, lead):
        assert e["traits"] == {"email": "Ann.Lee@Example.com", "phone": "(415) 555-0100"}


@pytest.mark.slow
def test_with_advertising_consent_denied_every_event_carries_the_denial(tmp_path):
    events = visit(tmp_path, consent="false")
    assert len(events) == 5
    for e in events:
        assert e["context"]["consent"] == {"categoryPreferences": {"advertising": False}}
