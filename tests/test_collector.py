"""The tracking collector over real HTTP, run as its own process, with a real Segment SDK as one client."""

import gzip
import json
import time

import duckdb
import httpx
import pytest

from ingestion.durable import recover_orphans
from ingestion.landing import list_landing_files
from ingestion.loader import load_all
from tests.services import acknowledged_until_sigkill, service

KEYS = ("wk_site_a", "wk_server_b")


@pytest.fixture
def env(tmp_path):
    return {"COLLECTOR_WRITE_KEYS": ",".join(KEYS), "LANDING_DIR": str(tmp_path / "landing")}


def landed(tmp_path) -> list[dict]:
    return [
        json.loads(line)
        for p in list_landing_files(tmp_path / "landing", "tracking")
        for line in p.read_text().splitlines()
    ]


def page(anonymous_id="b-1", **extra) -> dict:
    return {
        "type": "page",
        "messageId": f"m-{anonymous_id}-{time.monotonic_ns()}",
        "anonymousId": anonymous_id,
        "timestamp": "2026-11-20T10:00:00.000Z",
        "context": {"page": {"url": "https://shop.example/?ttclid=E.C.P.abc&utm_source=tiktok"}},
        **extra,
    }


def test_a_real_segment_sdk_sends_page_identify_and_track_batched_and_they_land_in_the_contract(env, tmp_path):
    from segment.analytics import Client

    errors = []
    with service("ingestion.collector", env) as col:
        client = Client(
            KEYS[1], host=col.url, on_error=lambda e, batch: errors.append(e), upload_size=50, max_retries=1
        )
        for i in range(120):
            client.page(
                anonymous_id=f"b-{i}",
                name="Home",
                properties={"url": f"https://shop.example/?ttclid=c{i}"},
                context={
                    "page": {"url": f"https://shop.example/?ttclid=c{i}", "referrer": ""},
                    "cookies": {"_ttp": f"ttp{i}"},
                },
            )
        client.identify(
            user_id="u-7", anonymous_id="b-7", traits={"email": " Ann@Example.com ", "phone": "+1 415 555 0100"}
        )
        client.track(user_id="u-7", event="Lead", properties={"form": "newsletter"})
        client.flush()
        client.join()
        stats = httpx.get(f"{col.url}/healthz").json()
    assert not errors
    assert stats["requests"] >= 3, "the SDK batched its messages into several requests"
    events = landed(tmp_path)
    assert len(events) == 122
    by_type = {t: [e for e in events if e["type"] == t] for t in ("page", "identify", "track")}
    assert [len(v) for v in by_type.values()] == [120, 1, 1]
    for e in events:  # the contract's required fields, and what the server fills
        assert e["messageId"] and e["timestamp"] and (e.get("anonymousId") or e.get("userId"))
        assert e["context"]["ip"] == "127.0.0.1" and e["receivedAt"] and "writeKey" not in e
    assert by_type["identify"][0]["traits"]["email"] == " Ann@Example.com "
    assert by_type["track"][0]["event"] == "Lead"
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        result = load_all(con, tmp_path / "landing")["tracking"]
        assert (result.loaded_rows, result.quarantined_rows) == (122, 0)


def test_bad_input_gets_the_right_4xx_and_nothing_already_accepted_is_lost(env, tmp_path):
    with service("ingestion.collector", env) as col:
        post = lambda path, body, key=KEYS[0], **kw: httpx.post(  # noqa: E731
            f"{col.url}{path}",
            content=body if isinstance(body, bytes) else json.dumps(body).encode(),
            auth=(key, "") if key else None,
            **kw,
        )
        good = post("/v1/batch", {"batch": [page("b-good-1"), page("b-good-2")]})
        assert good.status_code == 200 and good.json() == {"success": True}
        cases = {
            "malformed JSON": (post("/v1/batch", b'{"batch": [{"type": "page",'), 400, "not valid JSON"),
            "not an object": (post("/v1/batch", [1, 2]), 400, "must be a JSON object"),
            "batch not a list": (post("/v1/batch", {"batch": {"type": "page"}}), 400, "batch must be an array"),
            "unknown type": (
                post("/v1/batch", {"batch": [page(), dict(page(), type="screen")]}),
                400,
                "batch[1].type must be one of",
            ),
            "no ids": (
                post("/v1/page", {"timestamp": "2026-11-20T10:00:00Z"}),
                400,
                "needs an anonymousId or a userId",
            ),
            "wrong id type": (post("/v1/identify", {"userId": {"id": 1}}), 400, "userId must be a string"),
            "properties not an object": (
                post("/v1/track", {"anonymousId": "b", "event": "E", "properties": [1]}),
                400,
                "properties must be an object",
            ),
            "track without event": (post("/v1/track", {"anonymousId": "b"}), 400, "event is required"),
            "bad timestamp": (
                post("/v1/page", {"anonymousId": "b", "timestamp": "yesterday"}),
                400,
                "must be an RFC 3339 date-time",
            ),
            "wrong endpoint": (post("/v1/track", dict(page(), event="x")), 400, "sent to the track endpoint"),
            "oversize event": (
                post("/v1/track", {"anonymousId": "b", "event": "E", "properties": {"x": "y" * 33_000}}),
                413,
                "at most 32768 bytes",
            ),
            "oversize event in a batch": (
                post("/v1/batch", {"batch": [page(), dict(page(), properties={"x": "y" * 33_000})]}),
                413,
                "batch[1] is",
            ),
            "oversize batch": (
                post("/v1/batch", {"batch": [dict(page(), properties={"x": "y" * 20_000}) for _ in range(30)]}),
                413,
                "at most 512000 bytes",
            ),
            "unknown write key": (post("/v1/batch", {"batch": [page()]}, key="wk_nope"), 401, "unknown write key"),
            "no write key": (post("/v1/batch", {"batch": [page()]}, key=None), 401, "no write key"),
            "gzip bomb": (
                post("/v1/batch", gzip.compress(b"[" + b" " * 2_000_000 + b"]"), headers={"Content-Encoding": "gzip"}),
                413,
                "once decompressed",
            ),
        }
        for name, (response, status, message) in cases.items():
            assert response.status_code == status, (name, response.text)
            assert message in response.json()["error"], (name, response.json())
        later = post(
            "/v1/batch",
            gzip.compress(json.dumps({"batch": [page("b-good-3")]}).encode()),
            headers={"Content-Encoding": "gzip"},
        )
        assert later.status_code == 200
    ids = sorted(e["anonymousId"] for e in landed(tmp_path))
    assert ids == ["b-good-1", "b-good-2", "b-good-3"]


def test_browsers_get_cors_and_the_server_fills_ids_times_ip_and_user_agent(tmp_path):
    env = {
        "COLLECTOR_WRITE_KEYS": KEYS[0],
        "LANDING_DIR": str(tmp_path / "landing"),
        "COLLECTOR_ALLOWED_ORIGINS": "https://shop.example",
        "COLLECTOR_TRUSTED_PROXIES": "127.0.0.0/8",
    }
    with service("ingestion.collector", env) as col:
        pre = httpx.options(
            f"{col.url}/v1/batch", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
        )
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "https://shop.example"
        assert "POST" in pre.headers["access-control-allow-methods"]
        other = httpx.options(f"{col.url}/v1/batch", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # a beacon: text/plain, write key in the body, no id, a skewed client clock, behind our proxy
        body = {
            "writeKey": KEYS[0],
            "sentAt": "2026-11-20T10:00:10.000Z",
            "batch": [{"type": "page", "anonymousId": "b-9", "originalTimestamp": "2026-11-20T10:00:00.000Z"}],
        }
        r = httpx.post(
            f"{col.url}/v1/batch",
            content=json.dumps(body),
            headers={
                "Content-Type": "text/plain",
                "Origin": "https://shop.example",
                "User-Agent": "Mozilla/5.0 Test",
                "X-Forwarded-For": "203.0.113.7, 127.0.0.1",
            },
        )
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://shop.example"
        again = httpx.post(f"{col.url}/v1/batch", content=json.dumps(body), headers={"Content-Type": "text/plain"})
        assert again.status_code == 200
        tracker = httpx.get(f"{col.url}/tracker.js")
        assert tracker.status_code == 200 and "sendBeacon" in tracker.text
        assert httpx.get(f"{col.url}/tracker.js", headers={"If-None-Match": tracker.headers["etag"]}).status_code == 304
    first, retry = landed(tmp_path)
    assert first["messageId"].startswith("srv-") and first["messageId"] == retry["messageId"]
    assert first["context"]["ip"] == "203.0.113.7" and first["context"]["userAgent"] == "Mozilla/5.0 Test"
    skew = time.time() - time.mktime(time.strptime(first["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) + time.timezone
    assert abs(skew - 10) < 30, "the timestamp was moved to the server's clock, 10 s before receipt"


def test_the_collector_refuses_to_start_without_write_keys(tmp_path):
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ingestion.collector", "--port", "0"],
        env={**os.environ, "COLLECTOR_WRITE_KEYS": "", "LANDING_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "COLLECTOR_WRITE_KEYS is not set" in out.stderr


def test_every_acknowledged_event_survives_sigkill_mid_stream(env, tmp_path):
    def send(client, n, i):
        key = f"b-{n}-{i}"
        r = client.post(f"{col.url}/v1/batch", json={"batch": [page(key), page(key)]}, auth=(KEYS[0], ""))
        return key, r.status_code

    # durability under load from one address: the per-address rate limit is not what this measures
    with service("ingestion.collector", {**env, "COLLECTOR_RATE_PER_SECOND": "0"}) as col:
        acked = acknowledged_until_sigkill(col, send)
    landing = tmp_path / "landing"
    assert list(landing.rglob(".open-*")), "the killed collector left its open segment"
    recover_orphans(landing / "tracking")
    stored = {e["anonymousId"] for e in landed(tmp_path)}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged batches lost, e.g. {sorted(missing)[:3]}"


def test_cors_allows_the_sdks_retry_headers_without_credentials_and_refuses_other_sites(tmp_path):
    """Segment's analytics-next resends a failed message with X-Retry-Count: the preflight must allow it, or the
    browser blocks every retry. Credentials are never allowed, and other sites' pages are refused at the door."""
    env = {
        "COLLECTOR_WRITE_KEYS": KEYS[0],
        "LANDING_DIR": str(tmp_path / "landing"),
        "COLLECTOR_ALLOWED_ORIGINS": "https://shop.example",
    }
    with service("ingestion.collector", env) as col:
        pre = httpx.options(
            f"{col.url}/v1/batch",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-retry-count",
            },
        )
        assert pre.status_code == 204
        allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
        assert {"content-type", "x-retry-count", "authorization", "content-encoding"} <= allowed
        assert "access-control-allow-credentials" not in pre.headers
        odd = httpx.options(
            f"{col.url}/v1/batch",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-retry-count, bad header, x-ok",
            },
        )
        assert "bad header" not in odd.headers["access-control-allow-headers"]
        assert "x-ok" in odd.headers["access-control-allow-headers"]
        evil = httpx.options(
            f"{col.url}/v1/batch", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
        retry = httpx.post(
            f"{col.url}/v1/batch",
            auth=(KEYS[0], ""),
            json={"batch": [page("b-retry")]},
            headers={"Origin": "https://shop.example", "X-Retry-Count": "1"},
        )
        assert retry.status_code == 200 and "access-control-allow-credentials" not in retry.headers
        forged = httpx.post(
            f"{col.url}/v1/batch",
            auth=(KEYS[0], ""),
            json={"batch": [page("b-evil")]},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403
        # no trusted proxy configured: a client's X-Forwarded-For is not believed, even over loopback
        spoofed = httpx.post(
            f"{col.url}/v1/batch",
            auth=(KEYS[0], ""),
            json={"batch": [page("b-spoof")]},
            headers={"X-Forwarded-For": "198.51.100.9"},
        )
        assert spoofed.status_code == 200
    by_id = {e["anonymousId"]: e for e in landed(tmp_path)}
    assert set(by_id) == {"b-retry", "b-spoof"}
    assert by_id["b-spoof"]["context"]["ip"] == "127.0.0.1"


def test_abuse_is_refused_with_a_4xx_and_valid_traffic_still_lands(env, tmp_path):
    """Everything here once answered 500, landed a line the loader then refused, or held the collector's work
    for minutes. Each is refused at the door with a 4xx and a clear message."""
    import socket

    env = {**env, "COLLECTOR_BODY_TIMEOUT_SECONDS": "1", "COLLECTOR_RATE_PER_SECOND": "10"}
    with service("ingestion.collector", env) as col:

        def post(body, headers=None, raw=False):
            return httpx.post(
                f"{col.url}/v1/batch", auth=(KEYS[0], ""), headers=headers, content=body if raw else json.dumps(body)
            )

        tiny = {"type": "page", "anonymousId": "b", "timestamp": "2026-11-20T10:00:00Z"}
        bomb = gzip.compress(json.dumps({"batch": [tiny] * 17_500}).encode())
        assert len(bomb) < 5000
        refused = {
            "a 5 KB gzip body of 17,500 messages": post(bomb, {"Content-Encoding": "gzip"}, raw=True),
            "nesting deeper than JSON parsers allow": post(
                '{"batch": [{"type": "page", "anonymousId": "b", "properties": ' + "[" * 5000 + "]" * 5000 + "}]}",
                raw=True,
            ),
            "nesting past orjson's writer": post({"batch": [{**tiny, "properties": _nested(300)}]}),
            "a date past what a timestamp holds": post({"batch": [{**tiny, "timestamp": "9999-12-31T23:59:59-12:00"}]}),
            "a clock-skew correction out of range": post(
                {
                    "sentAt": "0001-01-01T00:00:00Z",
                    "batch": [
                        {
                            **{k: v for k, v in tiny.items() if k != "timestamp"},
                            "originalTimestamp": "9999-01-01T00:00:00Z",
                        }
                    ],
                }
            ),
            "an ISO week date the warehouse cannot read": post({"batch": [{**tiny, "timestamp": "2026-W27-3"}]}),
            "a time decades away": post({"batch": [{**tiny, "timestamp": "1971-01-01T00:00:00Z"}]}),
            "a control character in an id": post({"batch": [{**tiny, "anonymousId": "b-\u0000-x"}]}),
            "an id of 10,000 characters": post({"batch": [{**tiny, "messageId": "m" * 10_000}]}),
        }
        for name, response in refused.items():
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:200])
            assert response.json()["error"], name
        # a body that never arrives is dropped after the timeout instead of holding the worker
        with socket.create_connection(("127.0.0.1", col.port)) as s:
            s.sendall(
                b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\nAuthorization: Basic d2tfc2l0ZV9hOg==\r\n\r\n{"batch": ['
            )
            s.settimeout(10)
            started = time.monotonic()
            answer = s.recv(4096)
            assert b" 408 " in answer.split(b"\r\n")[0] and time.monotonic() - started < 5
        # a flood from one address is slowed down (429, Retry-After), then served again
        flood = [post({"batch": [page("b-flood")]}).status_code for _ in range(120)]
        assert 429 in flood and 200 in flood
        limited = next(r for r in (post({"batch": [page("b-flood")]}) for _ in range(60)) if r.status_code == 429)
        assert int(limited.headers["retry-after"]) >= 1
        time.sleep(1.5)
        ok = post({"batch": [page("b-after")], "sentAt": None})
        assert ok.status_code == 200, ok.text
    events = landed(tmp_path)
    assert {e["anonymousId"] for e in events} <= {"b-flood", "b-after"}
    assert any(e["anonymousId"] == "b-after" for e in events)
    assert all(e["timestamp"].endswith("Z") and len(e["timestamp"]) == 24 for e in events)


def test_slow_and_oversized_headers_are_cut_off_while_valid_traffic_is_served(env, tmp_path):
    """Slowloris: many connections that never finish their headers (idle, or trickling a header every few hundred
    milliseconds) once held the collector for as long as the clients liked. Each is answered 408 and closed after
    HTTP_HEADER_TIMEOUT_SECONDS; headers above HTTP_MAX_HEADER_BYTES are refused with 431; a valid batch sent while
    they hang lands."""
    import socket

    env = {**env, "HTTP_HEADER_TIMEOUT_SECONDS": "1", "HTTP_MAX_HEADER_BYTES": "8192"}
    with service("ingestion.collector", env) as col:
        started = time.monotonic()
        idle = [socket.create_connection(("127.0.0.1", col.port)) for _ in range(100)]
        trickling = [socket.create_connection(("127.0.0.1", col.port)) for _ in range(100)]
        for s in trickling:
            s.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n")
        r = httpx.post(f"{col.url}/v1/batch", auth=(KEYS[0], ""), json={"batch": [page("b-during")]})
        assert r.status_code == 200, r.text
        for _ in range(3):
            time.sleep(0.3)
            for s in trickling:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass
        for s in idle + trickling:
            s.settimeout(5)
            answer = s.recv(4096)
            assert answer == b"" or b" 408 " in answer.split(b"\r\n")[0], answer[:80]
            s.close()
        assert time.monotonic() - started < 5
        with socket.create_connection(("127.0.0.1", col.port)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n")
            s.settimeout(5)
            assert b" 431 " in s.recv(4096).split(b"\r\n")[0]
        # a keep-alive connection's second request is held to the same deadline
        with socket.create_connection(("127.0.0.1", col.port)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            first = s.recv(4096)
            while not first.endswith(b"}"):
                first += s.recv(4096)
            assert b" 200 " in first.split(b"\r\n")[0]
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert b" 408 " in s.recv(4096).split(b"\r\n")[0]
        assert httpx.get(f"{col.url}/healthz").status_code == 200
    assert any(e["anonymousId"] == "b-during" for e in landed(tmp_path))


def test_the_header_guard_extends_uvicorns_protocol_through_callbacks_it_still_has():
    """GuardedHttpToolsProtocol overrides these methods of uvicorn's HttpToolsProtocol; if an upgrade renames one,
    the guard would silently stop guarding: fail here instead."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from ingestion.http_service import GuardedHttpToolsProtocol

    used = [
        "connection_made",
        "connection_lost",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "send_400_response",
    ]
    for name in used:
        assert callable(getattr(HttpToolsProtocol, name, None)), name
        assert name in GuardedHttpToolsProtocol.__dict__, name


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_browser_key_cannot_name_an_ip_and_a_server_key_can(tmp_path):
    env = {
        "COLLECTOR_WRITE_KEYS": "wk_public",
        "COLLECTOR_SERVER_WRITE_KEYS": "wk_server",
        "LANDING_DIR": str(tmp_path / "landing"),
    }
    with service("ingestion.collector", env) as col:
        for key, anon in (("wk_public", "b-browser"), ("wk_server", "b-server")):
            r = httpx.post(
                f"{col.url}/v1/batch",
                auth=(key, ""),
                json={"batch": [page(anon, context={"ip": "192.0.2.44", "page": {"url": "https://x/"}})]},
            )
            assert r.status_code == 200, r.text
    ips = {e["anonymousId"]: e["context"]["ip"] for e in landed(tmp_path)}
    assert ips == {"b-browser": "127.0.0.1", "b-server": "192.0.2.44"}
