"""What the two HTTP services (Stripe webhook receiver, tracking collector) share: reading a bounded body,
JSON answers, and running under uvicorn with a clean shutdown that publishes what was accepted."""

from __future__ import annotations

import asyncio
import logging
import os

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    """The body did not arrive in time (a client that sends headers and then trickles or nothing)."""


def json_response(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error(status: int, message: str, headers: dict | None = None) -> Response:
    return json_response(status, {"error": message}, headers)


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading it all, and one that has not fully arrived
    within ``timeout`` seconds (BodyTimeout), so a slow client cannot hold the worker."""
    if timeout is not None:
        try:
            return await asyncio.wait_for(read_body(request, limit), timeout)
        except TimeoutError:
            raise BodyTimeout from None
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge
        except ValueError:
            pass
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _env_number(name: str, default, cast):
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except ValueError:
        raise SystemExit(f"{name} must be {'an integer' if cast is int else 'a number'}, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float)


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int)


def configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def service_main(argv: list[str] | None, *, prog: str, description: str, default_port: int, app_factory: str,
                 check_settings) -> int:
    """The command line of a service: --host, --port, --workers; the settings are checked (a missing secret
    refuses to start) before the port is bound."""
    import argparse

    from ingestion.config import owner_only_files

    owner_only_files()

    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=default_port)
    ap.add_argument("--workers", type=int, default=1, help="processes; each writes its own segment")
    args = ap.parse_args(argv)
    check_settings()
    serve(app_factory, host=args.host, port=args.port, workers=args.workers)
    return 0


def serve(app_factory: str, *, host: str, port: int, workers: int, log_level: str = "warning") -> None:
    """Run an ASGI app factory (``module:function``) under uvicorn with uvloop and httptools.

    SIGTERM and SIGINT stop accepting, let requests in flight finish, then run the app's shutdown, which
    commits and publishes the landing segment.
    """
    import uvicorn

    uvicorn.run(app_factory, factory=True, host=host, port=port, workers=workers if workers > 1 else None,
                loop="uvloop", http="httptools", log_level=log_level, access_log=False,
                timeout_graceful_shutdown=30, server_header=False, date_header=False,
                # the apps read X-Forwarded-For themselves, from configured proxies only; uvicorn's own handling
                # believes it from any loopback peer
                proxy_headers=False)


__all__ = ["BodyTimeout", "BodyTooLarge", "ClientDisconnect", "configure_logging", "error", "json_response", "read_body",
           "env_float", "env_int", "serve", "service_main"]
