"""The one rate limiter and backoff rule the Stripe pull and the TikTok client share (ingestion/pacing.py)."""

import asyncio

from ingestion.pacing import RateLimiter, backoff_seconds


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_no_window_of_one_second_holds_more_calls_than_the_rate():
    clock = Clock()
    limiter = RateLimiter(5, clock=clock)
    times = []
    for _ in range(23):
        limiter.wait(clock.sleep)
        times.append(clock.now)
    assert all(sum(1 for t in times if start <= t < start + 1) <= 5 for start in times)
    assert times[-1] - times[0] < 4.1, "and it is not slower than the rate"


def test_asyncio_callers_are_paced_alike():
    limiter = RateLimiter(1000)

    async def main():
        await asyncio.gather(*(limiter.acquire() for _ in range(50)))

    asyncio.run(main())
    assert len(limiter.sent) == 50


def test_backoff_doubles_up_to_its_cap_with_jitter():
    for attempt, expected in ((1, 0.5), (2, 1.0), (3, 2.0), (10, 30.0)):
        delays = [backoff_seconds(attempt, 0.5, 30.0) for _ in range(200)]
        assert all(0.5 * expected <= d <= 1.5 * expected for d in delays)
        assert max(delays) - min(delays) > 0.1 * expected, "jittered"
