"""Stripe's Events API pulled incrementally, and history older than its 30-day retention backfilled from the
object lists; both land in ``$LANDING_DIR/stripe_events/`` as Stripe Event objects, the one way into the
warehouse (the webhook receiver writes the same format).

The pull keeps a durable cursor (``$LANDING_DIR/_state/stripe_events_pull.json``, written atomically after the
events are landed): the newest ``created`` landed, and the ids landed in the last ``overlap`` seconds. The next
pull lists ``created[gte] = cursor - overlap`` (``created`` has one-second resolution and events become
listable slightly after their time, so ``gt`` loses same-second events) and skips the ids already landed.
A cursor older than the retention cannot be caught up from events: the gap is recorded in the state, reported
on every pull until a backfill covers it, and the pull continues from the oldest event Stripe still has.

The backfill lands each object of the list endpoints (invoices with every line and every invoice payment, checkout
sessions with their line items, payment intents, charges with refunds, customers, subscriptions) as a synthetic
event of the type
that object's state would have produced (``invoice.paid``, ``charge.refunded``, …), timed by the object's own
timestamps, with a deterministic id (``evt_bf_…``), so staging reads it like any event and a second backfill
adds nothing.

Requests go through stripe-python's ``StripeClient`` (base URL configurable for a local fake; its
``raw_request``, which keeps stripe-python's authentication, parameter encoding and typed errors but skips
building a ``StripeObject`` tree per page: that took three quarters of the pull's time and the JSON is landed
as is), at most ``requests_per_second``, with exponential backoff and jitter on 429, 5xx and connection errors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase
from pathlib import Path

import stripe

from ingestion import config
from ingestion.landing import STRIPE_DIR, write_jsonl_atomic
from ingestion.pacing import RateLimiter, backoff_seconds
from ingestion.settings import env_field, from_env

log = logging.getLogger(__name__)

RETENTION_SECONDS = 30 * 86400
STATE_FILE = Path("_state") / "stripe_events_pull.json"
PULL_SUBDIR = "pull"
BACKFILL_SUBDIR = "backfill"
BACKFILL_RESOURCES = ("customers", "invoices", "checkout_sessions", "payment_intents", "charges", "subscriptions")


class StripePullError(Exception):
    """A pull or backfill that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class PullSettings:
    """Each setting written once, with the environment variable it is read from (ingestion/settings.py); the
    Dagster resource's config is derived from these fields (orchestration/resources.py)."""

    api_key: str | None = env_field("STRIPE_API_KEY")
    landing_dir: Path = field(default_factory=config.landing_dir)
    api_base: str | None = env_field("STRIPE_API_BASE")
    overlap_seconds: int = env_field("STRIPE_PULL_OVERLAP_SECONDS", 300)
    # Stripe allows 25/s in test mode, 100/s live
    requests_per_second: float = env_field("STRIPE_REQUESTS_PER_SECOND", 20.0)
    # empty: every event type
    types: tuple[str, ...] = env_field(
        "STRIPE_PULL_TYPES", (), parse=lambda raw: tuple(t.strip() for t in raw.split(",") if t.strip())
    )
    max_retries: int = 8
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    events_per_file: int = 50_000

    @classmethod
    def from_env(cls) -> PullSettings | None:
        """None when ``STRIPE_API_KEY`` is unset (the pull is skipped)."""
        settings = from_env(cls)
        if not settings.api_key:
            return None
        types = settings.types
        if len(types) > 20:
            raise StripePullError(f"STRIPE_PULL_TYPES: Stripe accepts at most 20 event types, got {len(types)}")
        if types and not any(fnmatchcase("invoice_payment.paid", t) for t in types):
            # since API 2025-03-31.basil only this event ties a PaymentIntent to its invoice
            raise StripePullError(
                "STRIPE_PULL_TYPES must include invoice_payment.paid (or invoice_payment.*): "
                "since Stripe API 2025-03-31.basil it is the only event that says which "
                "PaymentIntent paid an invoice"
            )
        return settings

    def client(self) -> stripe.StripeClient:
        kwargs = {"base_addresses": {"api": self.api_base.rstrip("/")}} if self.api_base else {}
        # retries are ours (below): stripe-python retries a 429 only when Stripe sends Stripe-Should-Retry
        return stripe.StripeClient(self.api_key, max_network_retries=0, **kwargs)

    @property
    def state_path(self) -> Path:
        return Path(self.landing_dir) / STATE_FILE


# ---- requests ---------------------------------------------------------------------------------------------


class Requester:
    """Calls stripe-python with a requests-per-second cap and backoff + jitter on 429, 5xx and network errors."""

    def __init__(self, settings: PullSettings, sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.sleep = sleep
        self.requests = 0
        self.retries = 0
        self.limiter = RateLimiter(settings.requests_per_second)

    def __call__(self, call: Callable[[], stripe.StripeResponse]) -> dict:
        for attempt in range(self.settings.max_retries + 1):
            self.limiter.wait(self.sleep)
            self.requests += 1
            try:
                result = call()
            except stripe.AuthenticationError as exc:
                raise StripePullError(
                    "Stripe refused STRIPE_API_KEY (401): set a secret or restricted key with "
                    f"read access to events and the listed objects. ({exc.user_message})"
                ) from None
            except stripe.InvalidRequestError as exc:
                raise StripePullError(f"Stripe refused the request ({exc.http_status}): {exc.user_message}") from None
            except stripe.PermissionError as exc:
                raise StripePullError(
                    f"STRIPE_API_KEY lacks a permission this pull needs (403): {exc.user_message}"
                ) from None
            except (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError) as exc:
                status = getattr(exc, "http_status", None)
                if (
                    isinstance(exc, stripe.APIError)
                    and not isinstance(exc, stripe.RateLimitError)
                    and status is not None
                    and status < 500
                ):
                    raise
                if attempt == self.settings.max_retries:
                    raise StripePullError(
                        f"Stripe kept failing after {attempt + 1} attempts "
                        f"(last: HTTP {status}, {type(exc).__name__}); run again later"
                    ) from exc
                self.retries += 1
                delay = backoff_seconds(attempt + 1, self.settings.backoff_seconds, self.settings.max_backoff_seconds)
                log.warning("Stripe answered %s (%s); retrying in %.2f s", status, type(exc).__name__, delay)
                self.sleep(delay)
                continue
            return result.data  # the JSON exactly as Stripe sent it
        raise AssertionError("unreachable")

    def pages(self, call: Callable[[dict], stripe.StripeResponse], params: dict) -> Iterator[list[dict]]:
        """Every page of a newest-first list, following ``starting_after``."""
        params = dict(params, limit=100)
        while True:
            page = self(lambda params=params: call(params))
            data = page.get("data") or []
            if data:
                yield data
            if not page.get("has_more") or not data:
                return
            params = dict(params, starting_after=data[-1]["id"])

    def sub_list(self, call: Callable[[dict], stripe.StripeResponse]) -> list[dict]:
        """All items of a sub-list (invoice lines, session line items), first to last."""
        items: list[dict] = []
        for data in self.pages(call, {}):
            items += data
        return items


# ---- state ------------------------------------------------------------------------------------------------


@dataclass
class PullState:
    cursor: int | None = None  # newest event `created` landed
    recent_ids: dict[str, int] = field(default_factory=dict)  # ids landed within the overlap -> created
    gaps: list[dict] = field(default_factory=list)  # [{"from": epoch, "to": epoch, "detected_at": epoch}]
    last_pull_at: int | None = None

    @classmethod
    def load(cls, path: Path) -> PullState:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
            return cls(
                cursor=raw.get("cursor"),
                recent_ids=dict(raw.get("recent_ids") or {}),
                gaps=list(raw.get("gaps") or []),
                last_pull_at=raw.get("last_pull_at"),
            )
        except (ValueError, AttributeError) as exc:
            raise StripePullError(
                f"the pull state {path} is not readable ({exc}); fix or remove it "
                "(removing it re-pulls the last 30 days, deduplicated downstream)"
            ) from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            json.dump(
                {
                    "cursor": self.cursor,
                    "recent_ids": self.recent_ids,
                    "gaps": self.gaps,
                    "last_pull_at": self.last_pull_at,
                },
                f,
                indent=1,
                sort_keys=True,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def open_gaps(landing_dir: Path) -> list[dict]:
    return PullState.load(Path(landing_dir) / STATE_FILE).gaps


def _iso(epoch: int | float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_gap(gap: dict) -> str:
    return (
        f"Stripe events between {_iso(gap['from'])} and {_iso(gap['to'])} are older than Stripe's 30-day "
        f"event retention and can no longer be pulled. Run the backfill from "
        f"{_iso(gap['from'])[:10]}: `python -m ingestion.stripe_pull backfill --start "
        f"{_iso(gap['from'])[:10]}` or the Dagster job `stripe_backfill`."
    )


# ---- landing ----------------------------------------------------------------------------------------------


class ChunkedLanding:
    """Lands records in files of at most ``per_file`` lines under ``stripe_events/<subdir>/<day>/``."""

    def __init__(self, landing_dir: Path, subdir: str, per_file: int, run_id: str):
        self.folder = Path(landing_dir) / STRIPE_DIR / subdir / datetime.now(UTC).strftime("%Y-%m-%d")
        self.per_file, self.run_id = per_file, run_id
        self.buffer: list[str] = []
        self.files: list[Path] = []
        self.written = 0

    def add(self, record: dict) -> None:
        self.buffer.append(json.dumps(record, separators=(",", ":")))
        if len(self.buffer) >= self.per_file:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            path = self.folder / f"{self.run_id}-{len(self.files):05d}.jsonl"
            self.written += write_jsonl_atomic(path, self.buffer)
            self.files.append(path)
            self.buffer = []


def _run_id() -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{random.getrandbits(24):06x}"


def _complete_invoice_lines(req: Requester, client: stripe.StripeClient, invoice: dict) -> int:
    """Replace a truncated ``lines.data`` (``has_more``) by every line. Returns how many lines were added."""
    lines = invoice.get("lines")
    if not isinstance(lines, dict) or not lines.get("has_more"):
        return 0
    before = len(lines.get("data") or [])
    full = req.sub_list(lambda p: client.raw_request("get", f"/v1/invoices/{invoice['id']}/lines", **p))
    invoice["lines"] = dict(lines, data=full, has_more=False)
    if "total_count" in lines:
        invoice["lines"]["total_count"] = len(full)
    return len(full) - before


def _complete_invoice_payments(req: Requester, client: stripe.StripeClient, invoice: dict) -> None:
    """Replace a truncated expanded ``payments`` (``has_more``) by every invoice payment of the invoice: since
    basil they are the one record of which PaymentIntent paid it (staging reads them from the invoice)."""
    payments = invoice.get("payments")
    if not isinstance(payments, dict) or not payments.get("has_more"):
        return
    full = req.sub_list(lambda p: client.raw_request("get", "/v1/invoice_payments", invoice=invoice["id"], **p))
    invoice["payments"] = dict(payments, data=full, has_more=False)


# ---- pull -------------------------------------------------------------------------------------------------


@dataclass
class PullResult:
    events_listed: int = 0
    events_written: int = 0
    duplicates_skipped: int = 0
    invoice_lines_completed: int = 0
    requests: int = 0
    retries: int = 0
    files: list[str] = field(default_factory=list)
    cursor_before: int | None = None
    cursor_after: int | None = None
    new_gap: dict | None = None
    open_gaps: list[dict] = field(default_factory=list)


def pull_events(
    settings: PullSettings, *, now: float | None = None, sleep: Callable[[float], None] = time.sleep
) -> PullResult:
    """Land every event created since the cursor (less the overlap) that was not landed before."""
    now = time.time() if now is None else now
    state = PullState.load(settings.state_path)
    result = PullResult(cursor_before=state.cursor)
    oldest_available = int(now - RETENTION_SECONDS) + 60  # a minute's margin for clocks and list latency
    if state.cursor is None:
        since = oldest_available
        log.warning(
            "first pull: landing the last 30 days of events; backfill older history with "
            "`python -m ingestion.stripe_pull backfill --start YYYY-MM-DD`"
        )
    else:
        since = state.cursor - settings.overlap_seconds
        if since < oldest_available:
            gap = {"from": since, "to": oldest_available, "detected_at": int(now)}
            state.gaps.append(gap)
            result.new_gap = gap
            log.error(describe_gap(gap))
            since = oldest_available
    client = settings.client()
    req = Requester(settings, sleep=sleep)
    params: dict = {"created": {"gte": since}}
    if settings.types:
        params["types"] = list(settings.types)
    landing = ChunkedLanding(settings.landing_dir, PULL_SUBDIR, settings.events_per_file, _run_id())
    seen = dict(state.recent_ids)
    newest = state.cursor
    for data in req.pages(lambda p: client.raw_request("get", "/v1/events", **p), params):
        for event in data:
            result.events_listed += 1
            if event["id"] in seen:
                result.duplicates_skipped += 1
                continue
            obj = (event.get("data") or {}).get("object") or {}
            if obj.get("object") == "invoice":
                result.invoice_lines_completed += _complete_invoice_lines(req, client, obj)
            landing.add(event)
            seen[event["id"]] = event["created"]
            newest = event["created"] if newest is None else max(newest, event["created"])
    landing.flush()
    # the cursor moves only once everything listed is durably landed
    state.cursor = newest if newest is not None else state.cursor
    if state.cursor is not None:
        keep_from = state.cursor - settings.overlap_seconds
        state.recent_ids = {k: v for k, v in seen.items() if v >= keep_from}
    state.last_pull_at = int(now)
    state.save(settings.state_path)
    result.events_written = landing.written
    result.files = [str(p) for p in landing.files]
    result.requests, result.retries = req.requests, req.retries
    result.cursor_after = state.cursor
    result.open_gaps = list(state.gaps)
    return result


# ---- backfill ---------------------------------------------------------------------------------------------


def _ts(*values) -> int | None:
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def backfill_event_type(obj: dict) -> tuple[str, int]:
    """The event type this object's state would have produced, and when it reached that state."""
    kind, status, created = obj.get("object"), obj.get("status"), obj.get("created") or 0
    if kind == "invoice":
        st = obj.get("status_transitions") or {}
        if status == "paid":
            return "invoice.paid", _ts(st.get("paid_at"), created)
        if status == "void":
            return "invoice.voided", _ts(st.get("voided_at"), created)
        if status == "uncollectible":
            return "invoice.marked_uncollectible", _ts(st.get("marked_uncollectible_at"), created)
        return ("invoice.finalized" if status == "open" else "invoice.created"), _ts(st.get("finalized_at"), created)
    if kind == "checkout.session":
        if status == "complete":
            return "checkout.session.completed", created  # the session has no completion time
        if status == "expired":
            return "checkout.session.expired", _ts(obj.get("expires_at"), created)
        return "checkout.session.updated", created
    if kind == "payment_intent":
        if status == "succeeded":
            return "payment_intent.succeeded", created
        if status == "canceled":
            return "payment_intent.canceled", _ts(obj.get("canceled_at"), created)
        return "payment_intent.created", created
    if kind == "charge":
        refunds = ((obj.get("refunds") or {}).get("data")) or []
        if (obj.get("amount_refunded") or 0) > 0:
            return "charge.refunded", _ts(max((r.get("created") or 0 for r in refunds), default=0), created)
        return {"succeeded": "charge.succeeded", "failed": "charge.failed"}.get(status, "charge.pending"), created
    if kind == "customer":
        return "customer.created", created
    if kind == "subscription":
        if status in ("canceled", "incomplete_expired"):
            return "customer.subscription.deleted", _ts(obj.get("ended_at"), obj.get("canceled_at"), created)
        return "customer.subscription.created", _ts(obj.get("start_date"), created)
    raise ValueError(f"no backfill event type for objects of type {kind!r}")


def backfill_event(obj: dict, api_version: str, fetched_at: int, endpoint: str) -> dict:
    """A Stripe Event wrapping a listed object. Its id depends only on the object's content, so landing the
    same state twice yields one row, and a changed state a new, later-or-equal event."""
    event_type, created = backfill_event_type(obj)
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return {
        "id": f"evt_bf_{digest[:24]}",
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": obj},
        "livemode": bool(obj.get("livemode")),
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        # not a Stripe field: where this synthetic event came from
        "backfill": {"endpoint": endpoint, "fetched_at": fetched_at},
    }


@dataclass
class BackfillResult:
    objects: dict[str, int] = field(default_factory=dict)
    events_written: int = 0
    invoice_lines_completed: int = 0
    requests: int = 0
    retries: int = 0
    files: list[str] = field(default_factory=list)
    gaps_closed: list[dict] = field(default_factory=list)


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def backfill(
    settings: PullSettings,
    start: date,
    end: date | None = None,
    *,
    resources: tuple[str, ...] = BACKFILL_RESOURCES,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillResult:
    """Land every object created from ``start`` (inclusive) to ``end`` (exclusive; default: now)."""
    unknown = set(resources) - set(BACKFILL_RESOURCES)
    if unknown:
        raise StripePullError(f"unknown backfill resources {sorted(unknown)}; choose from {BACKFILL_RESOURCES}")
    if end is not None and end <= start:
        raise StripePullError(f"backfill end {end} must be after its start {start}")
    client = settings.client()
    req = Requester(settings, sleep=sleep)
    created: dict = {"gte": _epoch(start)}
    if end is not None:
        created["lt"] = _epoch(end)
    fetched_at = int(time.time())
    api_version = stripe.api_version
    landing = ChunkedLanding(settings.landing_dir, BACKFILL_SUBDIR, settings.events_per_file, _run_id())
    result = BackfillResult()
    lists = {  # endpoint, extra parameters
        "customers": ("/v1/customers", {}),
        # payments is includable: only an expanding request returns the invoice -> PaymentIntent links
        "invoices": ("/v1/invoices", {"expand": ["data.payments"]}),
        "checkout_sessions": ("/v1/checkout/sessions", {"expand": ["data.line_items"]}),
        "payment_intents": ("/v1/payment_intents", {}),
        "charges": ("/v1/charges", {"expand": ["data.refunds"]}),
        "subscriptions": ("/v1/subscriptions", {"status": "all"}),
    }
    for name in resources:
        endpoint, extra = lists[name]
        count = 0
        for data in req.pages(
            lambda p, url=endpoint: client.raw_request("get", url, **p), {"created": created, **extra}
        ):
            for obj in data:
                if obj.get("object") == "invoice":
                    result.invoice_lines_completed += _complete_invoice_lines(req, client, obj)
                    _complete_invoice_payments(req, client, obj)
                if obj.get("object") == "checkout.session" and (obj.get("line_items") or {}).get("has_more"):
                    items = req.sub_list(
                        lambda p, cs=obj["id"]: client.raw_request("get", f"/v1/checkout/sessions/{cs}/line_items", **p)
                    )
                    obj["line_items"] = dict(obj["line_items"], data=items, has_more=False)
                landing.add(backfill_event(obj, api_version, fetched_at, endpoint))
                count += 1
        result.objects[name] = count
        log.warning("backfill: %d %s since %s", count, name, start)
    landing.flush()
    result.events_written = landing.written
    result.files = [str(p) for p in landing.files]
    result.requests, result.retries = req.requests, req.retries
    # a complete backfill from before a gap closes it
    if set(resources) == set(BACKFILL_RESOURCES):
        state = PullState.load(settings.state_path)
        covered_to = _epoch(end) if end is not None else fetched_at
        still_open = []
        for gap in state.gaps:
            if gap["from"] >= _epoch(start) and gap["to"] <= covered_to:
                result.gaps_closed.append(gap)
            else:
                still_open.append(gap)
        if result.gaps_closed:
            state.gaps = still_open
            state.save(settings.state_path)
    return result


# ---- command line -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    config.owner_only_files()
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m ingestion.stripe_pull",
        description="Pull Stripe events, or backfill history, into the landing zone.",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("pull", help="land new events from GET /v1/events since the cursor")
    bf = sub.add_parser("backfill", help="land objects created since --start from the list endpoints")
    bf.add_argument("--start", required=True, type=date.fromisoformat, help="YYYY-MM-DD (UTC)")
    bf.add_argument("--end", type=date.fromisoformat, help="YYYY-MM-DD, exclusive (default: now)")
    bf.add_argument("--resources", default=",".join(BACKFILL_RESOURCES))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    settings = PullSettings.from_env()
    if settings is None:
        print("STRIPE_API_KEY is not set: nothing to pull (set it, and STRIPE_API_BASE for a local fake)")
        return 2
    try:
        if args.command == "pull":
            r = pull_events(settings)
            print(
                f"listed {r.events_listed} events, landed {r.events_written}, skipped {r.duplicates_skipped} "
                f"already landed, {r.requests} requests ({r.retries} retried); cursor {r.cursor_after}"
            )
            for gap in r.open_gaps:
                print("GAP: " + describe_gap(gap))
            return 3 if r.open_gaps else 0
        b = backfill(
            settings, args.start, args.end, resources=tuple(x.strip() for x in args.resources.split(",") if x.strip())
        )
        print(
            f"backfilled {b.objects}, landed {b.events_written} events in {len(b.files)} files, "
            f"{b.requests} requests ({b.retries} retried); gaps closed: {len(b.gaps_closed)}"
        )
        return 0
    except StripePullError as exc:
        print(f"error: {exc}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
