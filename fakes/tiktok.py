"""A fake of the TikTok Events API 2.0 for tests, the demo and the benchmark, over real HTTP on 127.0.0.1.

It behaves as TikTok documents: ``POST /open_api/v1.3/event/track/`` with an ``Access-Token`` header; errors come
back as HTTP 200 with a non-zero ``code`` in the envelope ``{"code", "message", "request_id", "data"}``;
40001 for a token without permission on the pixel, 40002 for an invalid parameter (the whole batch is refused,
naming the first bad event), 40100 when throttled. It checks what TikTok checks: up to 1,000 events, seconds
(not milliseconds) in ``event_time``, string ``event_id`` and ``content_id``, SHA-256 hex for personal data.
Accepted events are recorded and deduplicated as TikTok does, by pixel + event + event_id.

Faults on demand (``FakeTikTok.inject`` in-process, or ``POST /_fake/faults`` with the same JSON):
``latency_ms`` for every request; ``script``: a queue of one-shot faults for the next requests, each one of
``{"http": 500}``, ``{"code": 40100}``, ``{"timeout": seconds}`` (accepts, then answers too late),
``{"drop": true}`` (closes the connection without an answer, accepting nothing); ``bad_event_ids``: events
that make their batch fail with 40002; ``deny``: answer 40001 to everything; ``rate_limit_per_second``:
answer 40100 beyond that many requests per second. ``GET /_fake/stats`` and ``POST /_fake/reset``.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import socket
import threading
import time
import uuid
from collections import Counter, deque

import jsonschema_rs
import orjson

from fakes._http import BackgroundServer, JsonHandler

TRACK_PATH = "/open_api/v1.3/event/track/"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
HASHED_USER_FIELDS = ("email", "phone", "external_id", "first_name", "last_name", "zip_code")
EVENT_SOURCES = ("web", "app", "offline", "crm")


class InvalidParameter(Exception):
    pass


_HEX = "0123456789abcdef"


def _check_hashed(value, where: str) -> None:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InvalidParameter(f"{where} must not be empty")
    for v in values:
        if not isinstance(v, str) or len(v) != 64 or v.strip(_HEX):
            raise InvalidParameter(f"{where} must be a SHA256 hash (64 lowercase hex characters)")


def validate_event(i: int, e) -> None:
    """The documented rules, written independently of the sender's JSON schema."""
    at = f"data[{i}]"
    if not isinstance(e, dict):
        raise InvalidParameter(f"{at} must be an object")
    if not isinstance(e.get("event"), str) or not e["event"]:
        raise InvalidParameter(f"{at}.event is required")
    t = e.get("event_time")
    if not isinstance(t, int) or isinstance(t, bool):
        raise InvalidParameter(f"{at}.event_time must be an integer")
    if t > 10_000_000_000:
        raise InvalidParameter(f"{at}.event_time must be in seconds, not milliseconds")
    if "event_id" in e and not isinstance(e["event_id"], str):
        raise InvalidParameter(f"{at}.event_id must be a string")
    user = e.get("user", {})
    if not isinstance(user, dict):
        raise InvalidParameter(f"{at}.user must be an object")
    for key in HASHED_USER_FIELDS:
        if key in user:
            _check_hashed(user[key], f"{at}.user.{key}")
    props = e.get("properties", {})
    if not isinstance(props, dict):
        raise InvalidParameter(f"{at}.properties must be an object")
    if "value" in props and (not isinstance(props["value"], (int, float)) or isinstance(props["value"], bool)):
        raise InvalidParameter(f"{at}.properties.value must be a number")
    if "currency" in props and not (isinstance(props["currency"], str) and re.match(r"^[A-Z]{3}$", props["currency"])):
        raise InvalidParameter(f"{at}.properties.currency must be an ISO 4217 code")
    for j, c in enumerate(props.get("contents") or []):
        if not isinstance(c, dict) or not isinstance(c.get("content_id"), str):
            raise InvalidParameter(f"{at}.properties.contents[{j}].content_id must be a string")


def _strict_events_schema() -> dict:
    """The rules of ``validate_event`` as a JSON schema, for speed only: a batch it passes is accepted without
    the Python walk (a quarter of the cost; the fake shares the benchmark's cores with the sender). It is stricter
    than ``validate_event`` in every clause, never looser, so a batch it refuses is checked again by
    ``validate_event``, which decides and names the first bad event."""
    hashed = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["event", "event_time"],
            "properties": {
                "event": {"type": "string", "minLength": 1},
                # 1.0 is an integer to JSON Schema, not to validate_event: _fast_valid checks the Python type
                "event_time": {"type": "integer", "maximum": 10_000_000_000},
                "event_id": {"type": "string"},
                "user": {
                    "type": "object",
                    "properties": {
                        key: {"oneOf": [hashed, {"type": "array", "minItems": 1, "items": hashed}]}
                        for key in HASHED_USER_FIELDS
                    },
                },
                "properties": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "number"},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        "contents": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["content_id"],
                                "properties": {"content_id": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    }


_STRICT_EVENTS = jsonschema_rs.validator_for(_strict_events_schema())


def _fast_valid(data: list) -> bool:
    return _STRICT_EVENTS.is_valid(data) and all(type(e["event_time"]) is int for e in data)


class FakeTikTok(BackgroundServer):
    thread_name = "fake-tiktok"

    def __init__(
        self, access_tokens=("test-token",), pixel_codes=("TESTPIXEL",), host: str = "127.0.0.1", port: int = 0
    ):
        self.access_tokens = set(access_tokens)
        self.pixel_codes = set(pixel_codes)
        self._lock = threading.Lock()
        self._cpu = threading.Lock()
        self.reset()
        self._make_server(host, port, _Handler)

    # ---- state -------------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.accepted: Counter = Counter()  # (pixel, event, event_id) -> times received in an OK batch
            self.accepted_events: dict = {}  # event_id -> the first accepted event
            self.accepted_at: dict = {}  # event_id -> when it was first accepted (time.time(), for freshness)
            self.requests = 0
            self.codes: Counter = Counter()
            self.test_event_codes: Counter = Counter()
            self.latency_ms = 0
            self.script: deque = deque()
            self.bad_event_ids: set = set()
            self.deny = False
            self.rate_limit_per_second = 0
            self._window: deque = deque()

    def inject(self, latency_ms=None, script=None, bad_event_ids=None, deny=None, rate_limit_per_second=None):
        with self._lock:
            if latency_ms is not None:
                self.latency_ms = latency_ms
            if script is not None:
                self.script.extend(script)
            if bad_event_ids is not None:
                self.bad_event_ids = set(bad_event_ids)
            if deny is not None:
                self.deny = deny
            if rate_limit_per_second is not None:
                self.rate_limit_per_second = rate_limit_per_second

    def stats(self) -> dict:
        with self._lock:
            unique = {k[2] for k in self.accepted}
            return {
                "requests": self.requests,
                "accepted_unique": len(unique),
                "accepted_total": sum(self.accepted.values()),
                "duplicates": sum(v - 1 for v in self.accepted.values()),
                "codes": {str(k): v for k, v in self.codes.items()},
                "test_event_codes": dict(self.test_event_codes),
            }

    def accepted_ids(self) -> Counter:
        with self._lock:
            out: Counter = Counter()
            for (_, _, event_id), n in self.accepted.items():
                out[event_id] += n
            return out

    # ---- the API -----------------------------------------------------------------------------------
    def handle_track(self, token: str | None, raw: bytes) -> tuple[str, dict | float | None]:
        """Returns ("reply", envelope), ("late", seconds) after accepting, or ("drop", None)."""
        with self._lock:
            self.requests += 1
            fault = self.script.popleft() if self.script else None
            latency = self.latency_ms / 1000
            throttled = False
            if self.rate_limit_per_second:
                now = time.monotonic()
                while self._window and self._window[0] < now - 1:
                    self._window.popleft()
                throttled = len(self._window) >= self.rate_limit_per_second
                self._window.append(now)
        if latency:
            time.sleep(latency)
        if fault and fault.get("drop"):
            return "drop", None
        if fault and "http" in fault:
            return "http", fault["http"]
        if fault and "code" in fault:
            return "reply", self._envelope(fault["code"], "injected fault")
        if throttled:
            return "reply", self._envelope(40100, "Too many requests. Please retry later.")
        if self.deny or token not in self.access_tokens:
            return "reply", self._envelope(40001, "No permission to operate pixel code. Please check the token.")
        # one request's parsing and checking at a time: threads fighting over the GIL for the same work
        # only make each of them slower (the latency above is still served in parallel)
        with self._cpu:
            return self._accept(raw, fault)

    def _accept(self, raw: bytes, fault: dict | None) -> tuple[str, dict | float | None]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return "reply", self._envelope(40002, "Invalid JSON body")
        try:
            self._validate(body)
        except PermissionError as e:
            return "reply", self._envelope(40001, str(e))
        except InvalidParameter as e:
            return "reply", self._envelope(40002, f"Invalid parameter: {e}")
        with self._lock:
            now = time.time()
            for e in body["data"]:
                self.accepted[(body["event_source_id"], e["event"], e.get("event_id"))] += 1
                self.accepted_events.setdefault(e.get("event_id"), e)
                self.accepted_at.setdefault(e.get("event_id"), now)
            if body.get("test_event_code"):
                self.test_event_codes[body["test_event_code"]] += len(body["data"])
        reply = self._envelope(0, "OK")
        if fault and "timeout" in fault:
            return "late", float(fault["timeout"])
        return "reply", reply

    def _validate(self, body) -> None:
        if not isinstance(body, dict):
            raise InvalidParameter("body must be an object")
        if body.get("event_source") not in EVENT_SOURCES:
            raise InvalidParameter(f"event_source must be one of {', '.join(EVENT_SOURCES)}")
        if body.get("event_source_id") not in self.pixel_codes:
            raise PermissionError(f"No permission to operate pixel code: {body.get('event_source_id')}")
        data = body.get("data")
        if not isinstance(data, list) or not 1 <= len(data) <= 1000:
            raise InvalidParameter("data must be a list of 1 to 1000 events")
        if not _fast_valid(data):
            for i, e in enumerate(data):
                validate_event(i, e)
        if self.bad_event_ids:
            for i, e in enumerate(data):
                if isinstance(e, dict) and e.get("event_id") in self.bad_event_ids:
                    raise InvalidParameter(f"data[{i}].user: invalid value")

    def _envelope(self, code: int, message: str) -> dict:
        with self._lock:
            self.codes[code] += 1
        return {"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": {}}


class _Handler(JsonHandler):
    owner: FakeTikTok

    def do_GET(self) -> None:
        if self.path == "/_fake/stats":
            self._send_json(200, self.owner.stats())
        elif self.path == "/_fake/accepted":
            self._send_json(200, dict(self.owner.accepted_ids()))
        else:
            self._send_json(404, {"message": "not found"})

    def do_POST(self) -> None:
        raw = self._body()
        if self.path == "/_fake/faults":
            self.owner.inject(**json.loads(raw or b"{}"))
            return self._send_json(200, {"ok": True})
        if self.path == "/_fake/reset":
            self.owner.reset()
            return self._send_json(200, {"ok": True})
        if self.path != TRACK_PATH:
            return self._send_json(404, {"code": 40400, "message": f"no such path {self.path}"})
        kind, value = self.owner.handle_track(self.headers.get("Access-Token"), raw)
        if kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if kind == "http":
            return self._send_json(int(value), {"message": f"HTTP {value} injected"})
        if kind == "late":
            time.sleep(value)
            try:
                return self._send_json(200, self.owner._envelope(0, "OK"))
            except OSError:  # the client gave up waiting, as intended
                self.close_connection = True
                return
        self._send_json(200, value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fakes.tiktok", description="Serve the fake TikTok Events API.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="test-token")
    ap.add_argument("--pixel", default="TESTPIXEL")
    ap.add_argument("--latency-ms", type=int, default=0)
    args = ap.parse_args(argv)
    # parsed JSON is acyclic and freed by reference counting; the cyclic collector would walk every accepted
    # event again every few requests, which soon costs more than serving them (this process is only the fake)
    gc.disable()
    fake = FakeTikTok(access_tokens=[args.token], pixel_codes=[args.pixel], port=args.port)
    fake.inject(latency_ms=args.latency_ms)
    return fake.serve_until_interrupted()


if __name__ == "__main__":
    raise SystemExit(main())
