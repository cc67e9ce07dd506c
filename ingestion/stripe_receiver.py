"""The Stripe webhook receiver: ``POST /webhooks/stripe`` and ``GET /healthz``.

Each request's ``Stripe-Signature`` is verified on the raw bytes with stripe-python against every configured
secret (``STRIPE_WEBHOOK_SECRET``, comma-separated while a secret is being rotated), timestamps older than the
tolerance are refused as replays, and the event is answered 2xx only once it is fsynced in the landing zone
(``$LANDING_DIR/stripe_events/webhooks/``), grouped with concurrent requests into one write. Duplicate
deliveries are accepted and deduplicated by the loader. Nothing is processed here: Stripe wants a fast 2xx.
Every event type is accepted; the endpoint should be subscribed to at least those the README lists, among them
``invoice_payment.paid`` (since API 2025-03-31.basil the only event tying a PaymentIntent to its invoice).

Answers: 200 stored; 400 bad or missing signature, stale timestamp, not JSON, not an event; 413 body over
``STRIPE_WEBHOOK_MAX_BYTES`` (1 MiB); 503 the landing zone could not be written (Stripe retries).

Start it with ``make stripe-receiver PORT=…`` or ``ttattr-stripe-receiver --port …``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
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
from ingestion.landing import STRIPE_DIR
from ingestion.settings import env_field, from_env

log = logging.getLogger(__name__)

WEBHOOK_SUBDIR = "webhooks"
DEFAULT_TOLERANCE = 300
DEFAULT_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class ReceiverSettings:
    """Each setting written once, with the environment variable it is read from (ingestion/settings.py)."""

    # during a rotation, both secrets, comma-separated
    secrets: tuple[str, ...] = env_field(
        "STRIPE_WEBHOOK_SECRET", (), parse=lambda raw: tuple(v.strip() for v in raw.split(",") if v.strip())
    )
    landing_dir: Path = field(default_factory=config.landing_dir)
    tolerance: int = env_field("STRIPE_WEBHOOK_TOLERANCE", DEFAULT_TOLERANCE)
    max_bytes: int = env_field("STRIPE_WEBHOOK_MAX_BYTES", DEFAULT_MAX_BYTES)
    rotate_seconds: float = env_field("LANDING_ROTATE_SECONDS", PUBLISH_SECONDS)
    # a body that has not arrived by then: 408 (Stripe retries)
    body_timeout_seconds: float = env_field("STRIPE_WEBHOOK_BODY_TIMEOUT_SECONDS", 10.0)

    @classmethod
    def from_env(cls) -> ReceiverSettings:
        try:
            settings = from_env(cls)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        if not settings.secrets:
            raise SystemExit(
                "STRIPE_WEBHOOK_SECRET is not set: the receiver refuses to start without the webhook "
                "signing secret (whsec_..., from the Stripe Dashboard's webhook endpoint page). "
                "During a rotation give both, comma-separated."
            )
        bad = [s for s in settings.secrets if not s.startswith("whsec_")]
        if bad:
            raise SystemExit(
                f"STRIPE_WEBHOOK_SECRET: every secret starts with 'whsec_'; {len(bad)} of {len(settings.secrets)} "
                "do not"
            )
        return settings

    @property
    def directory(self) -> Path:
        return self.landing_dir / STRIPE_DIR / WEBHOOK_SUBDIR


class InvalidSignature(Exception):
    pass


def verify(body: bytes, header: str | None, settings: ReceiverSettings) -> None:
    """Accept when any configured secret verifies the signature; a stale timestamp is named as such."""
    if not header:
        raise InvalidSignature("missing Stripe-Signature header")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("body is not UTF-8") from None
    stale = None
    for secret in settings.secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, settings.tolerance)
            return
        except stripe.SignatureVerificationError as exc:
            if "tolerance" in str(exc):
                stale = exc
    if stale is not None:
        raise InvalidSignature(f"timestamp older than {settings.tolerance} s (possible replay)")
    raise InvalidSignature("no signature matches (wrong secret, or the body was changed)")


def parse_event(body: bytes) -> dict:
    """The event as one compact JSON line's object; ValueError says why it is not an event."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("body is not JSON") from None
    if not isinstance(event, dict) or event.get("object") != "event":
        raise ValueError("body is not a Stripe event (object must be 'event')")
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise ValueError("event has no id")
    if not isinstance(event.get("type"), str):
        raise ValueError("event has no type")
    if not isinstance(event.get("created"), int):
        raise ValueError("event has no integer created")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise ValueError("event has no data.object")
    return event


def create_app(settings: ReceiverSettings | None = None) -> Starlette:
    settings = settings or ReceiverSettings.from_env()
    writer = GroupCommitWriter(settings.directory, rotate_seconds=settings.rotate_seconds)

    async def webhook(request: Request):
        try:
            body = await read_body(request, settings.max_bytes, settings.body_timeout_seconds)
        except BodyTooLarge:
            return error(413, f"body larger than {settings.max_bytes} bytes")
        except BodyTimeout:
            return error(408, f"the body did not arrive within {settings.body_timeout_seconds:g} s")
        except ClientDisconnect:
            return error(400, "client disconnected")
        try:
            verify(body, request.headers.get("stripe-signature"), settings)
        except InvalidSignature as exc:
            return error(400, f"signature verification failed: {exc}")
        try:
            event = parse_event(body)
        except ValueError as exc:
            return error(400, str(exc))
        line = orjson.dumps(event) + b"\n"
        try:
            await writer.write(line)
        except Exception:
            log.exception("could not store event %s", event["id"])
            return error(503, "could not store the event; retry later")
        return json_response(200, {"received": True, "id": event["id"]})

    async def healthz(request: Request):
        return json_response(
            200,
            {
                "status": "ok",
                "pending": writer.pending,
                "stored": writer.stats.lines,
                "published_files": writer.stats.published_files,
            },
        )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        recovered = await writer.start()
        for path in recovered:
            log.warning("published %s, left by a receiver that stopped without shutting down", path)
        log.warning("stripe receiver storing into %s", settings.directory)
        yield
        await writer.close()

    app = Starlette(
        routes=[Route("/webhooks/stripe", webhook, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])],
        lifespan=lifespan,
    )
    app.state.writer = writer
    return app


def app_from_env() -> Starlette:
    configure_logging()
    return create_app(ReceiverSettings.from_env())


def main(argv: list[str] | None = None) -> int:
    return service_main(
        argv,
        prog="ttattr-stripe-receiver",
        description=__doc__,
        default_port=8787,
        app_factory="ingestion.stripe_receiver:app_from_env",
        check_settings=ReceiverSettings.from_env,
    )


if __name__ == "__main__":
    raise SystemExit(main())
