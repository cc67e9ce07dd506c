"""What the two HTTP services (Stripe webhook receiver, tracking collector) share: reading a bounded body,
JSON answers, and running under uvicorn with a clean shutdown that publishes what was accepted."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ingestion.settings import env_field, from_env

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


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may take before its request reaches the app, for both services: uvicorn bounds neither
    the time a client may take to send its request line and headers (an idle or trickling connection is held for
    good, and enough of them exhaust the process) nor, with httptools, their size. Each setting written once
    (ingestion/settings.py)."""

    header_timeout_seconds: float = env_field("HTTP_HEADER_TIMEOUT_SECONDS", 10.0)
    max_header_bytes: int = env_field("HTTP_MAX_HEADER_BYTES", 16384)

    @classmethod
    def from_env(cls) -> ConnectionLimits:
        try:
            return from_env(cls)
        except ValueError as e:
            raise SystemExit(str(e)) from None


@functools.cache
def connection_limits() -> ConnectionLimits:
    """The limits, read once per process (each ``--workers`` process reads its own)."""
    return ConnectionLimits.from_env()


class HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's line and headers (from the connection's
    first byte, or a keep-alive request's first byte, to the end of its headers: 408 and closed after it) and a cap
    on their bytes (431). It extends the protocol class uvicorn's ``http`` setting accepts, through the parser
    callbacks that class implements (tests/test_collector.py names them, so an upgrade that renames one fails
    there). Module-level, so that ``--workers`` processes can import it; each reads the limits itself."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limits = connection_limits()
        self.header_deadline: asyncio.TimerHandle | None = None
        self.header_bytes = 0
        self.headers_refused = False

    def arm_header_deadline(self) -> None:
        self.disarm_header_deadline()
        self.header_bytes = 0
        self.header_deadline = self.loop.call_later(self.limits.header_timeout_seconds, self.header_deadline_passed)

    def disarm_header_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def header_deadline_passed(self) -> None:
        self.header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()

    def count_header_bytes(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > self.limits.max_header_bytes:
            self.headers_refused = True
            raise HeadersTooLarge  # the parser stops; uvicorn answers through send_400_response

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.arm_header_deadline()

    def on_url(self, url: bytes) -> None:
        self.count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.disarm_header_deadline()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self.headers_refused:
            return super().send_400_response(msg)
        self.disarm_header_deadline()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        self.transport.close()


def configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def service_main(
    argv: list[str] | None, *, prog: str, description: str, default_port: int, app_factory: str, check_settings
) -> int:
    """The command line of a service: --host, --port, --workers; the settings are checked (a missing secret
    refuses to start) before the port is bound."""
    import argparse

    from ingestion.config import owner_only_files

    owner_only_files()

    ap = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=default_port)
    ap.add_argument("--workers", type=int, default=1, help="processes; each writes its own segment")
    args = ap.parse_args(argv)
    check_settings()
    ConnectionLimits.from_env()
    serve(app_factory, host=args.host, port=args.port, workers=args.workers)
    return 0


def serve(app_factory: str, *, host: str, port: int, workers: int, log_level: str = "warning") -> None:
    """Run an ASGI app factory (``module:function``) under uvicorn with uvloop and httptools, each request's
    headers bounded in time and size (GuardedHttpToolsProtocol).

    SIGTERM and SIGINT stop accepting, let requests in flight finish, then run the app's shutdown, which
    commits and publishes the landing segment.
    """
    import uvicorn

    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        server_header=False,
        date_header=False,
        # the apps read X-Forwarded-For themselves, from configured proxies only; uvicorn's own handling
        # believes it from any loopback peer
        proxy_headers=False,
    )


__all__ = [
    "BodyTimeout",
    "BodyTooLarge",
    "ClientDisconnect",
    "ConnectionLimits",
    "GuardedHttpToolsProtocol",
    "configure_logging",
    "error",
    "json_response",
    "read_body",
    "serve",
    "service_main",
]
