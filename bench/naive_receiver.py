"""The naive webhook receiver the benchmark compares against: stripe-python's ``construct_event`` (verify, then
build a StripeObject) and one fsynced landing file per event, as most tutorials store webhooks."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ingestion.landing import write_jsonl_atomic


def create_app() -> Starlette:
    secret = os.environ["STRIPE_WEBHOOK_SECRET"]
    folder = Path(os.environ["LANDING_DIR"]) / "stripe_events" / "naive"

    async def webhook(request: Request):
        body = await request.body()
        try:
            event = stripe.Webhook.construct_event(body, request.headers.get("stripe-signature"), secret)
        except (ValueError, stripe.SignatureVerificationError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        write_jsonl_atomic(folder / f"{uuid.uuid4().hex}.jsonl", [json.dumps(event.to_dict(for_json=True))])
        return JSONResponse({"received": True})

    return Starlette(routes=[Route("/webhooks/stripe", webhook, methods=["POST"])])
