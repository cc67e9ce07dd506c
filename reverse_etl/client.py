"""A small asynchronous client for the TikTok Events API 2.0 on httpx.

One call, one request: ``await client.track(events)`` posts a batch and returns the parsed envelope. It never
treats HTTP 200 as success by itself: the body's ``code`` decides. Retrying, bisecting and bookkeeping are the
caller's (see ``reverse_etl.deliver``), so this stays easy to reason about and to point at a local fake.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import orjson

from ingestion.pacing import RateLimiter

TRACK_PATH = "/open_api/v1.3/event/track/"

# Codes from TikTok's documentation (see shared reference): 0 OK; 40001 no permission (stop and alert);
# 40002 invalid parameter (permanent for that payload); 40100 too many requests (back off, retry).
OK = 0
NO_PERMISSION = 40001
INVALID_PARAMETER = 40002
TOO_MANY_REQUESTS = 40100


class TikTokError(Exception):
    """Base class. ``response`` is the parsed reply when there was one."""

    def __init__(self, message: str, response: TrackResponse | None = None):
        super().__init__(message)
        self.response = response


class PermissionDenied(TikTokError):
    """40001, or HTTP 401/403: the token cannot send to this pixel. Retrying cannot help."""


class EndpointNotFound(TikTokError):
    """HTTP 404: the base URL is wrong."""


class TransportFailure(TikTokError):
    """Timeout, refused or dropped connection: nothing is known about whether TikTok got the events."""


@dataclass(frozen=True)
class TrackResponse:
    http_status: int
    code: int | None
    message: str
    request_id: str | None

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.code == OK


class EventsApiClient:
    """``async with EventsApiClient(...) as client: await client.track(events)``.

    ``concurrency`` bounds requests in flight; ``requests_per_second`` caps their rate (0: no cap).
    ``transport`` may be given for tests; by default a real connection pool is used.
    """

    def __init__(
        self,
        base_url: str,
        access_token: str,
        pixel_code: str,
        *,
        test_event_code: str | None = None,
        timeout_seconds: float = 15.0,
        concurrency: int = 4,
        requests_per_second: float = 50.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.pixel_code = pixel_code
        self.test_event_code = test_event_code
        self._semaphore = asyncio.Semaphore(max(1, concurrency))
        self._limiter = RateLimiter(requests_per_second)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            headers={"Access-Token": access_token, "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=max(1, concurrency), max_keepalive_connections=max(1, concurrency)),
        )

    async def __aenter__(self) -> EventsApiClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self._http.aclose()

    def body(self, events_array: bytes) -> bytes:
        """The request body around the events, given as one JSON array already encoded (once, not per attempt)."""
        head: dict = {"event_source": "web", "event_source_id": self.pixel_code}
        if self.test_event_code:
            head["test_event_code"] = self.test_event_code
        return orjson.dumps(head)[:-1] + b',"data":' + events_array + b"}"

    async def track(self, events: list[dict]) -> TrackResponse:
        return await self.track_array(orjson.dumps(events))

    async def track_array(self, events_array: bytes) -> TrackResponse:
        """Post one batch of events given as a JSON array. Raises PermissionDenied / EndpointNotFound (stop the
        run) and TransportFailure (retry); every other outcome, success or error code, comes back as a
        TrackResponse."""
        content = self.body(events_array)
        async with self._semaphore:
            await self._limiter.acquire()
            try:
                reply = await self._http.post(TRACK_PATH, content=content)
            except httpx.TimeoutException as e:
                raise TransportFailure(f"timed out after {self._http.timeout.read}s ({type(e).__name__})") from e
            except httpx.TransportError as e:
                raise TransportFailure(f"connection failed ({type(e).__name__}: {e})") from e
        response = _parse(reply)
        if reply.status_code in (401, 403) or response.code == NO_PERMISSION:
            raise PermissionDenied(
                f"TikTok refused the access token for pixel {self.pixel_code} (code {response.code}, "
                f"HTTP {reply.status_code}: {response.message}). Check that TIKTOK_ACCESS_TOKEN was generated for "
                "this pixel in TikTok Events Manager (Settings > Events API) and that TIKTOK_PIXEL_CODE is right; "
                "nothing more will be sent until it is fixed.",
                response,
            )
        if reply.status_code == 404:
            raise EndpointNotFound(f"{reply.request.url} answered 404: check TIKTOK_API_BASE_URL", response)
        return response


def _parse(reply: httpx.Response) -> TrackResponse:
    try:
        body = reply.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return TrackResponse(reply.status_code, None, f"HTTP {reply.status_code}: {reply.text[:200]}", None)
    code = body.get("code")
    return TrackResponse(
        reply.status_code,
        code if isinstance(code, int) else None,
        str(body.get("message", ""))[:1000],
        body.get("request_id"),
    )
