"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams (keep-alive, one request in flight per
connection), light enough that the client does not eat the cores the server under test needs.

Requests are prepared up front (bytes on the wire); each connection sends its share back to back and the
latency of every request is recorded from the first byte sent to the last byte of the answer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


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
        return (
            f"{self.requests} requests in {self.seconds:.2f} s = {self.per_second:,.0f}/s, "
            f"p50 {self.percentile(50):.1f} ms, p99 {self.percentile(99):.1f} ms, "
            f"max {max(self.latencies_ms):.1f} ms, statuses {dict(sorted(self.statuses.items()))}"
        )


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


async def _connection(host: str, port: int, requests: list[bytes], result: LoadResult, sent: list[int] | None) -> None:
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env={**os.environ, **env})
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{cmd} did not start on port {port}")


def measure_server(
    cmd: Callable[[int], list[str]],
    env: Callable[[Path], dict],
    requests: Callable[[int], list[bytes]],
    connections: int,
    warmup: int = 200,
    stored: Callable[[Path], int] | None = None,
) -> tuple[LoadResult, int]:
    """Start a server (``cmd(port)``, ``env(landing_dir)``) on a fresh landing zone, warm it up, load it with
    ``requests(port)``, stop it gracefully, and count what it stored."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        landing = Path(tmp)
        port = free_port()
        proc = start_server(cmd(port), env(landing), port)
        try:
            reqs = requests(port)
            asyncio.run(run_load("127.0.0.1", port, reqs[:warmup], connections))
            result = asyncio.run(run_load("127.0.0.1", port, reqs[warmup:], connections))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        return result, stored(landing) if stored else 0
