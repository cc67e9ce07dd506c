"""A throwaway PostgreSQL server from the installed binaries (Debian's postgresql-15): for `make demo
DEMO_WAREHOUSE=postgres`, the tests and the benchmark. Its files are removed when it stops.

initdb and postgres refuse to run as root, so as root the server runs as the `postgres` user (runuser), in a
folder that user owns; as any other user it runs as that user. Trust authentication on 127.0.0.1 only."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from simulator.live import free_port


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def postgres_server(settings: dict[str, str] | None = None):
    """Yields (host, port, user); stops the server and removes its files afterwards. ``settings``: server
    parameters beyond the defaults (``{"work_mem": "64MB"}``)."""
    import psycopg2

    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, postgres) are not installed")
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="ttattr-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    user = "postgres" if as_root else os.environ.get("USER", "postgres")
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "-E", "UTF8", "--locale=C"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [
            *run_as,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            *(arg for name, value in (settings or {}).items() for arg in ("-c", f"{name}={value}")),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres").close()
                break
            except psycopg2.OperationalError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        "PostgreSQL did not start: " + (root / "server.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.1)
        yield "127.0.0.1", port, user
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
