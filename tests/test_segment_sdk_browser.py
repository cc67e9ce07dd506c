"""Segment's own browser SDK (analytics-next, the version `make browser` fetches from npm) sending to the collector
from headless Chromium, across a restart of the collector: what it sent while the collector was down reaches the
landing zone once, through its retries (which carry `X-Retry-Count`, a header the preflight must allow, or the
browser blocks every retry)."""

import json
import os
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ingestion.landing import list_landing_files
from tests.services import ROOT, service
from tests.static_site import serve
from tests.test_tracker_browser import CHROMIUM, FLAGS, _browser_or_skip

WRITE_KEY = "wk_browser"


def _sdk_dir() -> Path:
    found = sorted(ROOT.glob("tests/.sdk/analytics-next-*/dist/umd/index.js"))
    if found:
        return found[-1].parent
    reason = "Segment's analytics-next is not fetched: run make browser (npm)"
    if os.environ.get("CI"):
        pytest.fail(f"the SDK test must run in CI: {reason}")
    pytest.skip(reason)


def _site(sdk: Path, collector_port: int) -> ThreadingHTTPServer:
    """A page loading analytics-next as a site would (no call to Segment's CDN: the settings are inline and its
    bundles are served by the site, where its CDN URL points)."""
    settings = {
        "integrations": {
            "Segment.io": {"apiKey": WRITE_KEY, "apiHost": f"127.0.0.1:{collector_port}/v1", "protocol": "http"}
        }
    }
    page = (
        '<html><head><title>Shop</title><script src="/analytics-next/bundles/index.js"></script><script>'
        f'window.analytics = AnalyticsNext.AnalyticsBrowser.load({{writeKey: "{WRITE_KEY}", '
        f"cdnURL: location.origin, cdnSettings: {json.dumps(settings)}}});"
        "</script></head><body>Shop</body></html>"
    ).encode()

    def route(path: str) -> tuple[bytes, str] | None:
        if path == "/":
            return page, "text/html; charset=utf-8"
        if path.startswith("/analytics-next/bundles/") and (sdk / Path(path).name).is_file():
            return (sdk / Path(path).name).read_bytes(), "application/javascript"
        return None

    return serve(route)


def _accepted(url: str, at_least: int, seconds: float) -> int:
    deadline = time.time() + seconds
    n = 0
    while time.time() < deadline:
        n = httpx.get(f"{url}/healthz").json()["accepted"]
        if n >= at_least:
            return n
        time.sleep(0.2)
    return n


@pytest.mark.slow
def test_segments_browser_sdk_delivers_across_a_collector_restart(tmp_path):
    sync_playwright = _browser_or_skip()
    sdk = _sdk_dir()
    env = {"COLLECTOR_WRITE_KEYS": WRITE_KEY, "LANDING_DIR": str(tmp_path / "landing"), "LANDING_ROTATE_SECONDS": "1"}
    retries: list[str] = []
    with service("ingestion.collector", env) as first:
        port = first.port
        shop = _site(sdk, port)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
                try:
                    page = browser.new_context().new_page()
                    page.on(
                        "request",
                        lambda r: (
                            retries.append(r.headers.get("x-retry-count"))
                            if r.method == "POST" and r.headers.get("x-retry-count")
                            else None
                        ),
                    )
                    page.goto(f"http://127.0.0.1:{shop.server_address[1]}/?ttclid=E.C.P.sdk&utm_source=tiktok")
                    page.evaluate("window.analytics.page()")
                    assert _accepted(first.url, 1, 20) >= 1, "the SDK's first page view reaches the collector"
                    first.stop()
                    # sent while the collector is down: the SDK keeps them and retries
                    page.evaluate("window.analytics.identify('u-sdk', {email: 'sdk.user@example.com'})")
                    page.evaluate("window.analytics.track('Lead', {form: 'signup'})")
                    time.sleep(3)
                    with service("ingestion.collector", env, port=port) as second:
                        assert _accepted(second.url, 2, 60) >= 2, "the retries reach the restarted collector"
                finally:
                    browser.close()
        finally:
            shop.shutdown()
    events = [
        json.loads(line)
        for p in list_landing_files(tmp_path / "landing", "tracking")
        for line in p.read_text().splitlines()
    ]
    kinds = sorted((e["type"], e.get("event") or "") for e in events)
    assert kinds == [("identify", ""), ("page", ""), ("track", "Lead")], kinds
    assert len({e["messageId"] for e in events}) == 3
    assert {e["anonymousId"] for e in events} and len({e["anonymousId"] for e in events}) == 1
    (identify,) = [e for e in events if e["type"] == "identify"]
    assert identify["userId"] == "u-sdk" and identify["traits"]["email"] == "sdk.user@example.com"
    assert retries and all(int(n) >= 1 for n in retries), "delivered by retries carrying X-Retry-Count"
