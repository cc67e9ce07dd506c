"""Starting the HTTP services as their own processes, as users run them, on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from simulator.live import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]


class Service:
    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc, self.port = proc, port
        self.url = f"http://127.0.0.1:{port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@contextmanager
def service(module: str, env: dict, *args: str, port: int | None = None):
    """Run ``python -m module --port P`` until it answers /healthz; stop it (SIGTERM) afterwards. ``port``: a given
    one (a restart on the same address), else a free one."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    svc = Service(proc, port)
    try:
        try:
            wait_until_healthy(proc, f"{svc.url}/healthz", "its output follows", seconds=30)
        except RuntimeError as e:
            if proc.poll() is None:
                proc.kill()
            raise RuntimeError(f"{module}: {e}\n{proc.stdout.read().decode()}") from None
        yield svc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def acknowledged_until_sigkill(svc: Service, send, clients: int = 8, min_acked: int = 1500) -> list[str]:
    """Run ``clients`` threads calling ``send(client, n, i) -> (id, status)`` in a loop against ``svc`` until at
    least ``min_acked`` got a 200, then SIGKILL the service mid-stream. Returns the acknowledged ids."""
    import threading

    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def run(n: int) -> None:
        with httpx.Client() as c:
            i = 0
            while not stop.is_set():
                try:
                    key, status = send(c, n, i)
                except httpx.HTTPError:
                    return  # the service is gone
                if status == 200:
                    with lock:
                        acked.append(key)
                i += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    deadline = time.time() + 120
    while len(acked) < min_acked and time.time() < deadline:
        time.sleep(0.01)
    svc.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= min_acked, f"only {len(acked)} requests acknowledged before the deadline"
    return acked
