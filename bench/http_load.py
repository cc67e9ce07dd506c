"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams (keep-alive, one request in flight per
connection), light enough that the client does not eat the cores the server under test needs.

Requests are prepared up front (bytes on the wire); each connection sends its share back to back and the
latency of every request is recorded from the first byte sent to the last byte of the answer.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field


def build_request(method: str, path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def summary(self) -> str:
        return (f"{self.requests} requests in {self.seconds:.2f} s = {self.per_second:,.0f}/s, "
                f"p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms, "
                f"max {max(self.latencies_ms):.1f} ms, statuses {dict(sorted(self.statuses.items()))}")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(host: str, port: int, requests: list[bytes], result: LoadResult,
                      sent: list[int] | None) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i, raw in enumerate(requests):
            t0 = time.perf_counter()
            writer.write(raw)
            status = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if sent is not None and status == 200:
                sent.append(i)
    finally:
        writer.close()


async def run_load(host: str, port: int, requests: list[bytes], connections: int) -> LoadResult:
    result = LoadResult(requests=len(requests))
    shares = [requests[i::connections] for i in range(connections)]
    t0 = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, s, result, None) for s in shares if s))
    result.seconds = time.perf_counter() - t0
    return result


def cores() -> int:
    return os.cpu_count() or 1


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")
