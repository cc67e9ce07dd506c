"""A fake of the Stripe API endpoints the pull and the backfill use, over real HTTP on 127.0.0.1, for tests,
the demo and the benchmark. stripe-python talks to it through ``base_addresses={"api": fake.url}``.

It behaves as Stripe documents: ``Authorization: Bearer <secret key>`` (401 otherwise); parameters
form-encoded in the query string (``created[gte]=…``, ``types[0]=…``, ``expand[0]=…``); lists newest first
with ``limit`` (1-100, default 10), ``starting_after`` / ``ending_before`` (not both) and ``has_more``;
errors as ``{"error": {"type", "code", "message", "param"}}``. Events older than the retention (30 days) are
not listed.

Endpoints: ``GET /v1/events`` (``created``, ``type`` with a ``*`` wildcard, ``types``), the object lists
``/v1/invoices``, ``/v1/checkout/sessions``, ``/v1/payment_intents``, ``/v1/charges``, ``/v1/customers``,
``/v1/subscriptions``, ``/v1/invoice_payments`` (also filtered by ``invoice``), ``/v1/refunds`` (``created``
filter; objects are the latest state of each object among the events, or added with
:meth:`FakeStripe.add_objects`), the retrieve endpoint of each (``GET /v1/invoices/{id}``, ...), and
``/v1/invoices/{id}/lines`` and ``/v1/checkout/sessions/{id}/line_items``.
Includable fields are returned only when a request expands them, as Stripe does: an invoice's ``payments``
(``expand[]=data.payments`` on a list, ``expand[]=payments`` on a retrieve; its first
``INVOICE_PAYMENTS_IN_LIST`` invoice payments with ``has_more``), a charge's ``refunds``
(``expand[]=data.refunds``), a session's ``line_items`` (``expand[]=data.line_items``).
Invoices in lists carry at most 10 lines with ``has_more`` as Stripe does.

Faults (``FakeStripe.inject`` or ``POST /_fake/faults`` with the same JSON): ``script``, a queue of one-shot
answers for the next requests (``{"http": 429}``, ``{"http": 500}``, ``{"http": 503}``); ``rate_limit_per_second``.
``GET /_fake/stats`` counts requests by path and faults served.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import threading
import time
from collections import Counter, deque
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from fakes._http import BackgroundServer, JsonHandler

RETENTION_SECONDS = 30 * 86400
INVOICE_LINES_IN_LIST = 10
INVOICE_PAYMENTS_IN_LIST = 10
OBJECT_LISTS = {
    "/v1/invoices": "invoice",
    "/v1/checkout/sessions": "checkout.session",
    "/v1/payment_intents": "payment_intent",
    "/v1/charges": "charge",
    "/v1/customers": "customer",
    "/v1/subscriptions": "subscription",
    "/v1/invoice_payments": "invoice_payment",
    "/v1/refunds": "refund",
}
INVOICE_LINES = re.compile(r"^/v1/invoices/([^/]+)/lines$")
SESSION_ITEMS = re.compile(r"^/v1/checkout/sessions/([^/]+)/line_items$")
RETRIEVE = re.compile(r"^(/v1/(?:checkout/sessions|[a-z_]+))/([^/]+)$")


class StripeError(Exception):
    def __init__(self, status: int, type_: str, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.code, self.param = status, type_, message, code, param

    def body(self) -> dict:
        err = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
        if self.param:
            err["param"] = self.param
        return {"error": err}


def parse_params(query: str) -> dict:
    """Stripe's form encoding: ``a[b]=1`` -> {"a": {"b": "1"}}, ``a[0]=x`` / ``a[]=x`` -> {"a": ["x"]}."""
    params: dict = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        m = re.match(r"^([^\[]+)((?:\[[^\]]*\])*)$", key)
        if not m:
            raise StripeError(400, "invalid_request_error", f"Invalid parameter name: {key}")
        name, rest = m.group(1), re.findall(r"\[([^\]]*)\]", m.group(2))
        if not rest:
            params[name] = value
        elif rest[0] == "" or rest[0].isdigit():
            params.setdefault(name, [])
            if not isinstance(params[name], list):
                raise StripeError(400, "invalid_request_error", f"Invalid array: {name}", param=name)
            params[name].append(value)
        else:
            params.setdefault(name, {})
            if not isinstance(params[name], dict):
                raise StripeError(400, "invalid_request_error", f"Invalid hash: {name}", param=name)
            params[name][rest[0]] = value
    return params


def _int(value, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, "invalid_request_error", f"Invalid integer: {value}", param=param) from None


def created_filter(params: dict):
    created = params.get("created")
    if created is None:
        return lambda t: True
    if isinstance(created, str):
        exact = _int(created, "created")
        return lambda t: t == exact
    if not isinstance(created, dict):
        raise StripeError(400, "invalid_request_error", "Invalid created filter", param="created")
    bounds = []
    for op, raw in created.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise StripeError(
                400, "invalid_request_error", f"Received unknown parameter: created[{op}]", param=f"created[{op}]"
            )
        bounds.append((op, _int(raw, f"created[{op}]")))
    checks = {
        "gt": lambda t, b: t > b,
        "gte": lambda t, b: t >= b,
        "lt": lambda t, b: t < b,
        "lte": lambda t, b: t <= b,
    }
    return lambda t: all(checks[op](t, b) for op, b in bounds)


def page(items: list[dict], params: dict, url: str, resource: str) -> dict:
    """``items`` are newest first. Stripe's cursor paging over them."""
    limit = _int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise StripeError(400, "invalid_request_error", "Invalid limit: must be between 1 and 100", param="limit")
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise StripeError(
            400, "invalid_request_error", "You may only specify one of these parameters: ending_before, starting_after."
        )
    ids = [o["id"] for o in items]
    if after or before:
        cursor = after or before
        if cursor not in ids:
            raise StripeError(
                400,
                "invalid_request_error",
                f"No such {resource}: '{cursor}'",
                code="resource_missing",
                param="starting_after" if after else "ending_before",
            )
        i = ids.index(cursor)
        if after:
            data = items[i + 1 : i + 1 + limit]
            has_more = i + 1 + limit < len(items)
        else:
            start = max(0, i - limit)
            data = items[start:i]
            has_more = start > 0
    else:
        data, has_more = items[:limit], len(items) > limit
    return {"object": "list", "url": url, "has_more": has_more, "data": data}


class FakeStripe(BackgroundServer):
    thread_name = "fake-stripe"

    def __init__(self, api_key: str = "sk_test_fake", host: str = "127.0.0.1", port: int = 0, now: float | None = None):
        self.api_key = api_key
        self._now = now
        self._lock = threading.Lock()
        self.events: list[dict] = []
        self._event_ids: set[str] = set()
        self._objects: dict[str, dict[str, dict]] = {kind: {} for kind in OBJECT_LISTS.values()}
        self._object_order: dict[str, tuple] = {}
        self.session_line_items: dict[str, list[dict]] = {}
        self.script: deque = deque()
        self.rate_limit_per_second: int | None = None
        self._recent: deque = deque()
        self.requests: Counter = Counter()
        self.faults: Counter = Counter()
        self._make_server(host, port, _Handler)

    # ---- data ----------------------------------------------------------------------------------------
    def now(self) -> float:
        return self._now if self._now is not None else time.time()

    def add_events(self, events) -> None:
        """Events in any order; each object's latest state (by created, then order added) is also listed."""
        with self._lock:
            for e in events:
                if e["id"] in self._event_ids:
                    continue
                self._event_ids.add(e["id"])
                seq = len(self.events)
                self.events.append(e)
                obj = e.get("data", {}).get("object", {})
                kind = obj.get("object")
                if kind in self._objects and obj.get("id"):
                    key = (e["created"], seq)
                    if self._object_order.get(obj["id"], (-1, -1)) <= key:
                        self._object_order[obj["id"]] = key
                        self._objects[kind][obj["id"]] = obj
            self.events.sort(key=lambda ev: ev["created"], reverse=True)

    def add_objects(self, objects) -> None:
        with self._lock:
            for obj in objects:
                self._objects[obj["object"]][obj["id"]] = obj

    def load_landing(self, landing_dir: Path) -> int:
        """Serve the events of a simulated world's landing zone (``stripe_events/**.jsonl``)."""
        events = []
        for path in sorted((Path(landing_dir) / "stripe_events").rglob("*.jsonl")):
            with open(path) as f:
                events += [json.loads(line) for line in f if line.strip()]
        self.add_events(events)
        return len(events)

    def inject(self, script=None, rate_limit_per_second=None) -> None:
        with self._lock:
            if script is not None:
                self.script.extend(script)
            if rate_limit_per_second is not None:
                self.rate_limit_per_second = rate_limit_per_second or None

    def stats(self) -> dict:
        with self._lock:
            return {"requests": dict(self.requests), "faults": dict(self.faults), "events": len(self.events)}

    # ---- the API -------------------------------------------------------------------------------------
    def handle(self, auth: str | None, method: str, target: str) -> tuple[int, dict, dict]:
        split = urlsplit(target)
        path = split.path.rstrip("/")
        with self._lock:
            self.requests[path] += 1
            fault = self.script.popleft() if self.script else None
            limited = False
            if self.rate_limit_per_second:
                now = time.monotonic()
                while self._recent and now - self._recent[0] > 1:
                    self._recent.popleft()
                limited = len(self._recent) >= self.rate_limit_per_second
                if not limited:
                    self._recent.append(now)
            if fault or limited:
                status = fault["http"] if fault else 429
                self.faults[status] += 1
        try:
            if auth != f"Bearer {self.api_key}":
                raise StripeError(401, "invalid_request_error", "Invalid API Key provided")
            if fault or limited:
                if status == 429:
                    raise StripeError(
                        429, "invalid_request_error", "Too many requests hit the API too quickly.", code="rate_limit"
                    )
                raise StripeError(status, "api_error", "An unknown error occurred (injected)")
            if method != "GET":
                raise StripeError(405, "invalid_request_error", f"Unrecognized request URL ({method}: {path})")
            params = parse_params(split.query)
            with self._lock:
                return 200, self._route(path, params), {}
        except StripeError as exc:
            return exc.status, exc.body(), {}

    def _route(self, path: str, params: dict) -> dict:
        if path == "/v1/events":
            return self._events(params)
        if path in OBJECT_LISTS:
            return self._objects_list(path, OBJECT_LISTS[path], params)
        m = RETRIEVE.match(path)
        if m and m.group(1) in OBJECT_LISTS:
            kind = OBJECT_LISTS[m.group(1)]
            obj = self._objects[kind].get(m.group(2))
            if obj is None:
                raise StripeError(
                    404, "invalid_request_error", f"No such {kind}: '{m.group(2)}'", code="resource_missing", param="id"
                )
            # a retrieve names what to expand without the list's "data." prefix
            return self._render(kind, obj, {f"data.{e}" for e in params.get("expand") or []})
        m = INVOICE_LINES.match(path)
        if m:
            inv = self._objects["invoice"].get(m.group(1))
            if inv is None:
                raise StripeError(
                    404,
                    "invalid_request_error",
                    f"No such invoice: '{m.group(1)}'",
                    code="resource_missing",
                    param="invoice",
                )
            lines = list(inv.get("lines", {}).get("data", []))
            return self._oldest_first_page(lines, params, path)
        m = SESSION_ITEMS.match(path)
        if m:
            if m.group(1) not in self._objects["checkout.session"]:
                raise StripeError(
                    404,
                    "invalid_request_error",
                    f"No such checkout.session: '{m.group(1)}'",
                    code="resource_missing",
                    param="session",
                )
            return self._oldest_first_page(self.session_line_items.get(m.group(1), []), params, path)
        raise StripeError(404, "invalid_request_error", f"Unrecognized request URL (GET: {path})")

    @staticmethod
    def _oldest_first_page(items: list[dict], params: dict, url: str) -> dict:
        """Sub-lists (invoice lines, session line items) page in their own order, first to last."""
        limit = _int(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise StripeError(400, "invalid_request_error", "Invalid limit: must be between 1 and 100", param="limit")
        ids = [o["id"] for o in items]
        start = 0
        if params.get("starting_after"):
            if params["starting_after"] not in ids:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"No such line item: '{params['starting_after']}'",
                    code="resource_missing",
                    param="starting_after",
                )
            start = ids.index(params["starting_after"]) + 1
        data = items[start : start + limit]
        return {"object": "list", "url": url, "has_more": start + limit < len(items), "data": data}

    def _events(self, params: dict) -> dict:
        keep = created_filter(params)
        oldest = self.now() - RETENTION_SECONDS
        types = params.get("types")
        if types is not None and (not isinstance(types, list) or len(types) > 20):
            raise StripeError(400, "invalid_request_error", "types must be a list of at most 20 types", param="types")
        if types is not None and "type" in params:
            raise StripeError(
                400, "invalid_request_error", "You may only specify one of these parameters: type, types."
            )
        patterns = types if types is not None else ([params["type"]] if "type" in params else None)
        items = [
            e
            for e in self.events
            if e["created"] >= oldest
            and keep(e["created"])
            and (patterns is None or any(fnmatchcase(e["type"], p) for p in patterns))
        ]
        return page(items, params, "/v1/events", "event")

    def _objects_list(self, path: str, kind: str, params: dict) -> dict:
        keep = created_filter(params)
        expand = set(params.get("expand") or [])
        invoice = params.get("invoice")
        objects = sorted(
            (
                o
                for o in self._objects[kind].values()
                if keep(o.get("created", 0))
                and (kind != "invoice_payment" or invoice is None or o.get("invoice") == invoice)
            ),
            key=lambda o: (o.get("created", 0), o["id"]),
            reverse=True,
        )
        result = page(objects, params, path, kind)
        result["data"] = [self._render(kind, o, expand) for o in result["data"]]
        return result

    def _render(self, kind: str, obj: dict, expand: set[str]) -> dict:
        obj = copy.deepcopy(obj)
        if kind == "invoice" and isinstance(obj.get("lines"), dict):
            lines = obj["lines"].get("data", [])
            rendered = {
                "object": "list",
                "data": lines[:INVOICE_LINES_IN_LIST],
                "has_more": len(lines) > INVOICE_LINES_IN_LIST,
                "url": f"/v1/invoices/{obj['id']}/lines",
            }
            if "total_count" in obj["lines"]:  # pre-basil versions only
                rendered["total_count"] = len(lines)
            obj["lines"] = rendered
        if kind == "invoice" and "data.payments" in expand:
            payments = sorted(
                (p for p in self._objects["invoice_payment"].values() if p.get("invoice") == obj["id"]),
                key=lambda p: (p.get("created", 0), p["id"]),
                reverse=True,
            )
            obj["payments"] = {
                "object": "list",
                "data": payments[:INVOICE_PAYMENTS_IN_LIST],
                "has_more": len(payments) > INVOICE_PAYMENTS_IN_LIST,
                "url": f"/v1/invoice_payments?invoice={obj['id']}",
            }
        if kind == "charge":
            obj.pop("refunds", None)
            if "data.refunds" in expand:
                refunds = sorted(
                    (r for r in self._objects["refund"].values() if r.get("charge") == obj["id"]),
                    key=lambda r: (r.get("created", 0), r["id"]),
                    reverse=True,
                )
                obj["refunds"] = {
                    "object": "list",
                    "data": refunds,
                    "has_more": False,
                    "url": f"/v1/charges/{obj['id']}/refunds",
                }
        if kind == "checkout.session" and "data.line_items" in expand:
            items = self.session_line_items.get(obj["id"], [])
            obj["line_items"] = {
                "object": "list",
                "data": items,
                "has_more": False,
                "url": f"/v1/checkout/sessions/{obj['id']}/line_items",
            }
        return obj


class _Handler(JsonHandler):
    owner: FakeStripe

    def do_GET(self) -> None:
        if self.path == "/_fake/stats":
            self._send_json(200, self.owner.stats())
            return
        status, body, headers = self.owner.handle(self.headers.get("Authorization"), "GET", self.path)
        self._send_json(status, body, {"Request-Id": f"req_fake{time.monotonic_ns()}"} | headers)

    def do_POST(self) -> None:
        raw = self._body()
        if self.path == "/_fake/faults":
            self.owner.inject(**json.loads(raw or b"{}"))
            self._send_json(200, {"ok": True})
            return
        status, body, headers = self.owner.handle(self.headers.get("Authorization"), "POST", self.path)
        self._send_json(status, body, headers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fakes.stripe", description="Serve the fake Stripe API.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", default="sk_test_fake")
    ap.add_argument("--landing-dir", help="serve the Stripe events of this landing zone")
    args = ap.parse_args(argv)
    fake = FakeStripe(api_key=args.api_key, port=args.port)
    if args.landing_dir:
        fake.load_landing(Path(args.landing_dir))
    return fake.serve_until_interrupted()


if __name__ == "__main__":
    raise SystemExit(main())
