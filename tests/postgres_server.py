"""A throwaway PostgreSQL server from the installed binaries (Debian's postgresql-15), for the tests.

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

from tests.services import free_port


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def postgres_server():
    """Yields (host, port, user); stops the server and removes its files afterwards."""
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
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "-E", "UTF8"],
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


@contextmanager
def server_with_database(dbname: str, needed_by: str):
    """A throwaway server holding an empty database ``dbname``; yields (host, port, user). Without the binaries the
    test is skipped, or fails when CI is set (the suite must run it there)."""
    import psycopg2
    import pytest

    if binaries() is None:
        reason = "PostgreSQL server binaries are not installed (Debian: apt-get install postgresql-15)"
        if os.environ.get("CI"):
            pytest.fail(f"{needed_by} must run in CI: {reason}")
        pytest.skip(reason)
    with postgres_server() as (host, port, user):
        con = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
        con.autocommit = True
        con.cursor().execute(f"create database {dbname}")
        con.close()
        yield host, port, user
