"""The naive collector the benchmark compares against: parse, check each message, and write one fsynced landing
file per request, as a first version of a collector usually does."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ingestion.landing import write_jsonl_atomic


def create_app() -> Starlette:
    folder = Path(os.environ["LANDING_DIR"]) / "tracking" / "naive"
    keys = set(os.environ["COLLECTOR_WRITE_KEYS"].split(","))

    async def batch(request: Request):
        body = json.loads(await request.body())
        if body.get("writeKey") not in keys:
            return JSONResponse({"error": "unknown write key"}, status_code=401)
        messages = body["batch"] if request.url.path == "/v1/batch" else [body]
        for m in messages:
            if not (m.get("anonymousId") or m.get("userId")):
                return JSONResponse({"error": "no id"}, status_code=400)
            m.setdefault("messageId", str(uuid.uuid4()))
        write_jsonl_atomic(folder / f"{uuid.uuid4().hex}.jsonl", [json.dumps(m) for m in messages])
        return JSONResponse({"success": True})

    return Starlette(routes=[Route("/v1/batch", batch, methods=["POST"]), Route("/v1/track", batch, methods=["POST"])])
