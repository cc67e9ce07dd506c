"""Pacing calls to an outside API, shared by the Stripe pull and the TikTok client: one rate limiter and one
backoff-with-jitter rule.

The limiter is a sliding window: at most ``rate`` calls in any window of one second (or of ``1/rate`` seconds
below one call a second), so no burst exceeds the cap, which a token bucket would allow at its start. It paces
blocking callers (`wait`) and asyncio ones (`acquire`) alike. (The collector's per-client token buckets are a
different thing: they refuse, they do not wait.)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """The wait before retry number ``attempt`` (1 for the first): ``base`` doubled with each attempt, at most
    ``cap``, times a random factor between 0.5 and 1.5, so that many clients failing together do not retry
    together."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


class RateLimiter:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.window = max(1.0, 1.0 / rate) if rate > 0 else 1.0
        self.limit = max(1, int(rate * self.window)) if rate > 0 else 0
        self.sent: deque[float] = deque()
        self.clock = clock
        self._lock: asyncio.Lock | None = None

    def _delay(self) -> float:
        """Seconds until a call may go; 0 when it may go now (and then it is counted)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        while self.sent and self.sent[0] <= now - self.window:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            self.sent.append(now)
            return 0.0
        return self.sent[0] + self.window - now + 0.001

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> None:
        while (delay := self._delay()) > 0:
            sleep(delay)

    async def acquire(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while (delay := self._delay()) > 0:
                await asyncio.sleep(delay)
