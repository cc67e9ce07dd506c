"""The throwaway PostgreSQL server of simulator/postgres_server.py, as the tests need it."""

from __future__ import annotations

import os
from contextlib import contextmanager

from simulator.postgres_server import binaries, postgres_server


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
