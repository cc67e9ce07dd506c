"""The tracking collector: the Segment HTTP tracking API, so the browser tracker and existing Segment SDKs can
send to it unchanged.

``POST /v1/batch`` (``{"batch": [...]}``), ``/v1/page``, ``/v1/identify``, ``/v1/track`` (one message; short
aliases ``/v1/p``, ``/v1/i``, ``/v1/t``), the tracker at ``GET /tracker.js``, ``GET /healthz``.

- Write key: HTTP Basic user name (``Authorization: Basic base64("<key>:")``) or ``writeKey`` in the body (a
  browser's ``sendBeacon`` cannot set headers); one of ``COLLECTOR_WRITE_KEYS``. Unknown or missing: 401.
- CORS for browsers, without credentials: preflight answered (the SDKs' headers, their retry headers included),
  ``Access-Control-Allow-Origin`` echoing allowed origins, other origins refused with 403
  (``COLLECTOR_ALLOWED_ORIGINS``, default any). Bodies may be ``text/plain`` (beacons) or gzip-encoded.
- Each message gets ``messageId`` when it has none (derived from its content, so an SDK's retry of the same
  message keeps its id and is deduplicated), ``receivedAt``, ``sentAt``, ``timestamp`` corrected for the client's
  clock skew as Segment does (or the receive time), ``receivedVia``; under a browser key ``context.ip`` from the
  connection (or ``X-Forwarded-For`` when the connection comes from a trusted proxy, ``COLLECTOR_TRUSTED_PROXIES``),
  whatever the message said, and ``context.userAgent`` from the request when the message lacks it; under a server
  key (``COLLECTOR_SERVER_WRITE_KEYS``, the shop's backend) the context as sent.
- Limits: 32 KiB per message, 500 KiB per request: 413. Anything malformed: 400 naming the message and the
  problem, and nothing of that request is stored. Answers 200 ``{"success": true}`` only once every message of
  the request is fsynced in ``$LANDING_DIR/tracking/collector/`` (group-committed, see ``ingestion/durable.py``).

Start it with ``make collector PORT=…`` or ``ttattr-collector --port …``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import logging
import re
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingestion import config
from ingestion.durable import PUBLISH_SECONDS, GroupCommitWriter
from ingestion.http_service import (
    BodyTimeout,
    BodyTooLarge,
    ClientDisconnect,
    configure_logging,
    error,
    json_response,
    read_body,
    service_main,
)
from ingestion.landing import TRACKING_DIR
from ingestion.settings import comma_separated, env_field, from_env

log = logging.getLogger(__name__)

COLLECTOR_SUBDIR = "collector"
MAX_MESSAGE_BYTES = 32 << 10
MAX_BATCH_BYTES = 500 << 10
# Segment's SDKs send batches of at most a few hundred messages; a request of more is abuse (a 5 KB gzip body
# inflates to 17,500 tiny messages)
MAX_MESSAGES = 1000
# ids (messageId, anonymousId, userId): what the warehouse keys and joins on
MAX_ID_CHARS = 255
# client timestamps the warehouse can hold and attribution can use: not older than this, nor in the future
MAX_EVENT_AGE_DAYS = 400
MAX_FUTURE = timedelta(days=1)
TYPES = {"page", "identify", "track"}
PATH_TYPES = {
    "/v1/page": "page",
    "/v1/p": "page",
    "/v1/identify": "identify",
    "/v1/i": "identify",
    "/v1/track": "track",
    "/v1/t": "track",
}
OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
TRACKER_JS = Path(__file__).resolve().parent / "static" / "tracker.js"


def _origins(raw: str) -> frozenset[str]:
    """Allowed origins, comma-separated, without a trailing slash; "*" (or nothing) means any."""
    return frozenset(o.rstrip("/") for o in comma_separated(raw) if o != "*")


def _networks(raw: str) -> tuple:
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in comma_separated(raw))
    except ValueError as e:
        raise ValueError(f"{e} (an IP address or network, e.g. 10.0.0.0/8)") from None


@dataclass(frozen=True)
class CollectorSettings:
    """Each setting written once, with the environment variable it is read from (ingestion/settings.py)."""

    # browser keys: public, in every page; what arrives under them is a claim
    write_keys: frozenset[str] = env_field("COLLECTOR_WRITE_KEYS", frozenset(), parse=comma_separated)
    # keys only the site's own servers hold: their messages are verified and may name the visitor's IP; under a
    # browser key context.ip is always the request's own address
    server_write_keys: frozenset[str] = env_field("COLLECTOR_SERVER_WRITE_KEYS", frozenset(), parse=comma_separated)
    landing_dir: Path = field(default_factory=config.landing_dir)
    # empty: any origin
    allowed_origins: frozenset[str] = env_field("COLLECTOR_ALLOWED_ORIGINS", frozenset(), parse=_origins)
    trusted_proxies: tuple = env_field("COLLECTOR_TRUSTED_PROXIES", (), parse=_networks)  # ip_network objects
    rotate_seconds: float = env_field("LANDING_ROTATE_SECONDS", PUBLISH_SECONDS)
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_batch_bytes: int = MAX_BATCH_BYTES
    max_messages: int = env_field("COLLECTOR_MAX_MESSAGES", MAX_MESSAGES)
    max_event_age_days: int = env_field("COLLECTOR_MAX_EVENT_AGE_DAYS", MAX_EVENT_AGE_DAYS)
    # a body that has not arrived by then: 408
    body_timeout_seconds: float = env_field("COLLECTOR_BODY_TIMEOUT_SECONDS", 10.0)
    # requests per client address (burst: 2 s worth); 0: none
    rate_per_second: float = env_field("COLLECTOR_RATE_PER_SECOND", 50.0)
    # requests per write key, all addresses together; 0: none
    key_rate_per_second: float = env_field("COLLECTOR_KEY_RATE_PER_SECOND", 2000.0)

    @classmethod
    def from_env(cls) -> CollectorSettings:
        try:
            settings = from_env(cls)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        if not settings.accepted_keys:
            raise SystemExit(
                "COLLECTOR_WRITE_KEYS is not set: the collector refuses to start without at least one "
                "write key (comma-separated; the tracker snippet and SDKs send one of them)"
            )
        return settings

    @property
    def accepted_keys(self) -> frozenset[str]:
        return self.write_keys | self.server_write_keys

    @property
    def directory(self) -> Path:
        return self.landing_dir / TRACKING_DIR / COLLECTOR_SUBDIR


class Invalid(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# ---- request details ----------------------------------------------------------------------------------------


def write_key_of(request: Request, body: dict) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Invalid("Authorization: Basic credentials are not base64 of '<write key>:'", 401) from None
        return user.split(":", 1)[0]
    key = body.get("writeKey")
    return key if isinstance(key, str) else None


def client_ip(request: Request, settings: CollectorSettings) -> str | None:
    peer = request.client.host if request.client else None
    if peer is None or not settings.trusted_proxies:
        return peer
    try:
        hop = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    forwarded = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    # walk from the nearest hop back while the hops are our proxies; the first other one is the client
    for candidate in reversed(forwarded):
        if not any(hop in net for net in settings.trusted_proxies):
            break
        try:
            hop = ipaddress.ip_address(candidate)
        except ValueError:
            break
        peer = candidate
    return peer


# Headers the common SDKs send: Segment's analytics.js / analytics-next (X-Retry-Count on every resend of a message
# whose first attempt failed), RudderStack's and Jitsu's SDKs (AnonymousId, Content-Type, Authorization).
SDK_HEADERS = ("Content-Type", "Authorization", "Content-Encoding", "X-Retry-Count", "AnonymousId")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def allowed_headers(request: Request) -> list[str]:
    """What a preflight may allow: the SDKs' headers, and any other plainly named header the page asks for (no
    credentials are ever allowed, so a request header grants nothing)."""
    asked = [h.strip() for h in request.headers.get("access-control-request-headers", "").split(",")]
    extra = [h for h in asked if _HEADER_NAME.match(h) and h.lower() not in {s.lower() for s in SDK_HEADERS}]
    return [*SDK_HEADERS, *extra[:20]]


def decode_body(raw: bytes, request: Request, limit: int) -> dict:
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise Invalid("body is not valid gzip") from None
        if len(raw) > limit or inflater.unconsumed_tail:
            raise Invalid(f"body larger than {limit} bytes once decompressed", 413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"body is not valid JSON ({str(exc).split(':')[0]})") from None
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object")
    return body


# ---- messages ---------------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?$")


# digits of a second's fraction beyond the microseconds a datetime holds; control characters (C0 and DEL)
_BEYOND_MICROSECONDS = re.compile(r"(\.\d{6})\d+")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def _parse_time(value, where: str) -> datetime:
    """An RFC 3339 date-time (what Segment's SDKs send; ISO week dates and other forms Python would read are
    refused: the warehouse could not). No zone: UTC."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise Invalid(
            f"{where} must be an RFC 3339 date-time such as 2026-11-20T10:00:00.000Z, not {str(value)[:40]!r}"
        )
    text = _BEYOND_MICROSECONDS.sub(r"\1", value.replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        t = datetime.fromisoformat(text)
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise Invalid(f"{where} is not a time a timestamp can hold: {value[:40]!r}") from None


def _within_window(t: datetime, received: datetime, max_age_days: int, where: str) -> datetime:
    if not received - timedelta(days=max_age_days) <= t <= received + MAX_FUTURE:
        raise Invalid(
            f"{where} is {_iso(t)}: more than {max_age_days} days before or a day after the time "
            "received (COLLECTOR_MAX_EVENT_AGE_DAYS)"
        )
    return t


def _dumps(msg: dict, where: str, option: int = 0) -> bytes:
    try:
        return orjson.dumps(msg, option=option)
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (it reads deeper than it writes)
        raise Invalid(f"{where} cannot be stored: {exc}") from None


def _check_id(value, where: str) -> None:
    if isinstance(value, str) and (len(value) > MAX_ID_CHARS or _CONTROL_CHARACTER.search(value)):
        raise Invalid(f"{where} must be at most {MAX_ID_CHARS} characters without control characters")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prepare(
    msg,
    where: str,
    *,
    default_type: str | None,
    received: datetime,
    sent_at: datetime | None,
    ip: str | None,
    user_agent: str | None,
    max_bytes: int,
    max_age_days: int = MAX_EVENT_AGE_DAYS,
    server_key: bool = False,
) -> bytes:
    """Validate one message, fill what the server knows, and return its landing line."""
    if not isinstance(msg, dict):
        raise Invalid(f"{where} must be a JSON object")
    msg_type = msg.get("type", default_type)
    if msg_type not in TYPES:
        raise Invalid(f"{where}.type must be one of page, identify, track (got {str(msg_type)[:40]!r})")
    if default_type and msg_type != default_type:
        raise Invalid(f"{where}.type is {msg_type!r} but was sent to the {default_type} endpoint")
    msg["type"] = msg_type
    for key in ("anonymousId", "userId"):
        value = msg.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            msg[key] = str(value)
        elif value is not None and not isinstance(value, str):
            raise Invalid(f"{where}.{key} must be a string")
    if not msg.get("anonymousId") and not msg.get("userId"):
        raise Invalid(f"{where} needs an anonymousId or a userId")
    if msg_type == "track" and (not isinstance(msg.get("event"), str) or not msg["event"].strip()):
        raise Invalid(f"{where}.event is required for a track call")
    for key in OBJECT_FIELDS:
        if key in msg and msg[key] is not None and not isinstance(msg[key], dict):
            raise Invalid(f"{where}.{key} must be an object")
    if "messageId" in msg and msg["messageId"] is not None and not isinstance(msg["messageId"], str):
        raise Invalid(f"{where}.messageId must be a string")
    for key in ("messageId", "anonymousId", "userId"):
        _check_id(msg.get(key), f"{where}.{key}")
    msg.pop("writeKey", None)
    if not msg.get("messageId"):
        if msg.get("timestamp") is not None or msg.get("originalTimestamp") is not None:
            # from the content as sent, which carries its own time: an SDK's retry keeps the id it got first
            digest = hashlib.sha256(_dumps(msg, where, orjson.OPT_SORT_KEYS)).hexdigest()
            msg["messageId"] = "srv-" + digest[:32]
        else:  # nothing tells two identical untimed messages apart
            msg["messageId"] = "srv-" + uuid.uuid4().hex
    context = msg.get("context") or {}
    # A browser's claimed IP is replaced by the address it sent from. A server key's request comes from the shop's
    # backend, whose address and agent are not the visitor's: its message keeps what it names, and nothing more.
    if not server_key:
        if ip:
            context["ip"] = ip
        if user_agent and not context.get("userAgent"):
            context["userAgent"] = user_agent
    msg["context"] = context
    # Segment's clock-skew rule: the event happened (sentAt - originalTimestamp) before it was received. Stored
    # in one canonical form the warehouse reads, within a window around the time received.
    if msg.get("timestamp") is not None:
        at = _parse_time(msg["timestamp"], f"{where}.timestamp")
    elif msg.get("originalTimestamp") is not None and sent_at is not None:
        original = _parse_time(msg["originalTimestamp"], f"{where}.originalTimestamp")
        try:
            at = received - (sent_at - original)
        except OverflowError:
            raise Invalid(f"{where}.originalTimestamp and sentAt are too far apart") from None
    elif msg.get("originalTimestamp") is not None:
        at = _parse_time(msg["originalTimestamp"], f"{where}.originalTimestamp")
    else:
        at = received
    msg["timestamp"] = _iso(_within_window(at, received, max_age_days, f"{where}.timestamp"))
    if sent_at is not None:
        msg["sentAt"] = _iso(sent_at)
    msg["receivedAt"] = _iso(received)
    # which kind of key it came under, whatever the message said: the models trust a server key's links
    msg["receivedVia"] = "server_key" if server_key else "browser_key"
    line = _dumps(msg, where)
    if len(line) > max_bytes:
        raise Invalid(f"{where} is {len(line)} bytes; a message may be at most {max_bytes} bytes", 413)
    return line + b"\n"


class RateLimiter:
    """A token bucket per key (a client address, a write key): ``rate`` requests a second, bursts of two seconds'
    worth. Per process: with N workers the limits add up. Buckets idle for a minute are forgotten."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, 2 * rate)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.swept = time.monotonic()

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        if now - self.swept > 60:
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 60}
            self.swept = now
        tokens, at = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True


@dataclass
class Counters:
    requests: int = 0
    accepted: int = 0
    rejected: dict = field(default_factory=dict)


def create_app(settings: CollectorSettings | None = None) -> Starlette:
    settings = settings or CollectorSettings.from_env()
    writer = GroupCommitWriter(settings.directory, rotate_seconds=settings.rotate_seconds)
    counters = Counters()
    rate_limits = RateLimiter(settings.rate_per_second)
    key_limits = RateLimiter(settings.key_rate_per_second)
    tracker = TRACKER_JS.read_bytes()
    tracker_etag = '"' + hashlib.sha256(tracker).hexdigest()[:16] + '"'

    def origin_refused(request: Request) -> bool:
        """A browser page of a site not in COLLECTOR_ALLOWED_ORIGINS (requests without an Origin are servers)."""
        origin = request.headers.get("origin")
        return bool(origin and settings.allowed_origins and origin.rstrip("/") not in settings.allowed_origins)

    def cors(request: Request) -> dict:
        # never with credentials: the collector reads no cookie, and a credentialed answer would let any allowed
        # page read responses in the visitor's name
        origin = request.headers.get("origin")
        if not origin or origin_refused(request):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def refuse(request: Request, exc: Invalid) -> Response:
        counters.rejected[exc.status] = counters.rejected.get(exc.status, 0) + 1
        headers = cors(request)
        if exc.status == 429:
            headers = {**headers, "Retry-After": "1"}
        return error(exc.status, str(exc), headers)

    async def ingest(request: Request) -> Response:
        counters.requests += 1
        path = request.url.path.rstrip("/")
        single = PATH_TYPES.get(path)
        limit = settings.max_message_bytes if single else settings.max_batch_bytes
        try:
            if not rate_limits.allow(client_ip(request, settings) or "?"):
                raise Invalid("too many requests from this address (COLLECTOR_RATE_PER_SECOND); retry later", 429)
            try:
                raw = await read_body(request, limit, settings.body_timeout_seconds)
            except BodyTimeout:
                raise Invalid(f"the body did not arrive within {settings.body_timeout_seconds:g} s", 408) from None
            except BodyTooLarge:
                raise Invalid(
                    f"body larger than {limit} bytes "
                    f"({'one message' if single else 'a batch'} may be at most {limit} bytes)",
                    413,
                ) from None
            except ClientDisconnect:
                raise Invalid("client disconnected") from None
            if origin_refused(request):
                raise Invalid("this origin may not send events (COLLECTOR_ALLOWED_ORIGINS)", 403)
            body = decode_body(raw, request, limit)
            key = write_key_of(request, body)
            if key is None:
                raise Invalid("no write key: send it as the HTTP Basic user name or as writeKey in the body", 401)
            if key not in settings.accepted_keys:
                raise Invalid("unknown write key", 401)
            if not key_limits.allow(key):
                raise Invalid("too many requests for this write key (COLLECTOR_KEY_RATE_PER_SECOND); retry later", 429)
            received = datetime.now(UTC)
            sent_at = _parse_time(body["sentAt"], "sentAt") if body.get("sentAt") else None
            ip = client_ip(request, settings)
            user_agent = request.headers.get("user-agent")
            if single:
                messages, default_type = [body], single
            else:
                messages, default_type = body.get("batch"), None
                if not isinstance(messages, list):
                    raise Invalid("batch must be an array of messages")
                if not messages:
                    raise Invalid("batch is empty")
                if len(messages) > settings.max_messages:
                    raise Invalid(
                        f"batch has {len(messages)} messages; at most {settings.max_messages} (COLLECTOR_MAX_MESSAGES)",
                        413,
                    )
                shared = body.get("context")
                if isinstance(shared, dict):  # a batch-level context applies to its messages (Segment SDKs)
                    for m in messages:
                        if isinstance(m, dict):
                            m["context"] = {**shared, **(m.get("context") or {})}
            lines = [
                prepare(
                    m,
                    "message" if single else f"batch[{i}]",
                    default_type=default_type,
                    received=received,
                    sent_at=sent_at,
                    ip=ip,
                    user_agent=user_agent,
                    max_bytes=settings.max_message_bytes,
                    max_age_days=settings.max_event_age_days,
                    server_key=key in settings.server_write_keys,
                )
                for i, m in enumerate(messages)
            ]
        except Invalid as exc:
            return refuse(request, exc)
        try:
            await writer.write(b"".join(lines), len(lines))
        except Exception:
            log.exception("could not store %d tracking messages", len(lines))
            return error(503, "could not store the events; retry later", cors(request))
        counters.accepted += len(lines)
        return json_response(200, {"success": True}, cors(request))

    async def preflight(request: Request) -> Response:
        if origin_refused(request):
            return error(403, "this origin may not send events (COLLECTOR_ALLOWED_ORIGINS)", {"Vary": "Origin"})
        headers = cors(request)
        if headers:
            headers |= {
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": ", ".join(allowed_headers(request)),
                "Access-Control-Max-Age": "86400",
            }
        return Response(status_code=204, headers=headers)

    async def tracker_js(request: Request) -> Response:
        if request.headers.get("if-none-match") == tracker_etag:
            return Response(status_code=304, headers={"ETag": tracker_etag})
        return Response(
            tracker,
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=3600", "ETag": tracker_etag, "Access-Control-Allow-Origin": "*"},
        )

    async def healthz(request: Request) -> Response:
        return json_response(
            200,
            {
                "status": "ok",
                "requests": counters.requests,
                "accepted": counters.accepted,
                "rejected": counters.rejected,
                "pending": writer.pending,
                "published_files": writer.stats.published_files,
            },
        )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for path in await writer.start():
            log.warning("published %s, left by a collector that stopped without shutting down", path)
        log.warning("collector storing into %s", settings.directory)
        yield
        await writer.close()

    paths = ["/v1/batch", "/v1/b", *PATH_TYPES]
    routes = [Route(p, ingest, methods=["POST"]) for p in paths]
    routes += [Route(p, preflight, methods=["OPTIONS"]) for p in paths]
    routes += [Route("/tracker.js", tracker_js, methods=["GET"]), Route("/healthz", healthz, methods=["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.writer = writer
    return app


def app_from_env() -> Starlette:
    configure_logging()
    return create_app(CollectorSettings.from_env())


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        prog="ttattr-collector",
        description=__doc__,
        default_port=8788,
        app_factory="ingestion.collector:app_from_env",
        check_settings=CollectorSettings.from_env,
    )


if __name__ == "__main__":
    raise SystemExit(main())
