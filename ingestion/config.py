"""Configuration from the environment (see .env.example), with the embedded defaults."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit


def owner_only_files() -> None:
    """Make every file and folder this process creates from now on readable by its owner only (0600 and 0700):
    landing files, segments, the warehouse and its write-ahead log, dbt's and Dagster's files all hold personal data
    or can. DuckDB, dbt and Dagster create files with the process's umask, so the umask is the one place that covers
    them all; the services, the code location and the command lines call this first."""
    os.umask(0o077)


def landing_dir() -> Path:
    return Path(os.environ.get("LANDING_DIR") or "./data/landing").resolve()


SESSION_OPTIONS = "-c jit=off"


@dataclass(frozen=True)
class PostgresWarehouse:
    """WAREHOUSE_URL, ``postgresql://user:password@host:port/dbname``: the warehouse is that PostgreSQL database
    instead of the DuckDB file. The password is never printed (repr leaves it out) and reaches dbt through the
    environment (``dbt_env``), not a command line."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    # the server settings of the pipeline's sessions (libpq's `options`, the URL's ``?options=``). JIT off: the
    # models' generated queries are wide and their row estimates rough, so PostgreSQL compiled and optimized
    # hundreds of expressions per query in LLVM, seconds more than running them (docs/decisions.md, 2026-12-07)
    options: str = SESSION_OPTIONS

    @classmethod
    def from_url(cls, url: str) -> PostgresWarehouse:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError("WAREHOUSE_URL must be a postgresql:// URL (unset for the DuckDB file)")
        try:
            port = parts.port or 5432
        except ValueError as e:
            raise ValueError(f"WAREHOUSE_URL has a bad port: {e}") from None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=unquote(parts.path.lstrip("/")) or "postgres",
            options=parse_qs(parts.query).get("options", [SESSION_OPTIONS])[-1],
        )

    @property
    def url(self) -> str:
        """The URL again, password included: for a setting that keeps it out of sight (a Dagster EnvVar, a test)."""
        auth = quote(self.user, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        query = "" if self.options == SESSION_OPTIONS else "?" + urlencode({"options": self.options})
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}{query}"

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            options=self.options,
        )

    @contextmanager
    def connection(self):
        """A connection, closed afterwards (psycopg2's own ``with`` ends a transaction but keeps it open)."""
        con = self.connect()
        try:
            with con:
                yield con
        finally:
            con.close()

    def dbt_env(self) -> dict[str, str]:
        """The variables that select dbt_project/profiles.yml's `postgres` target and that it reads, and libpq's
        PGOPTIONS, which every connection dbt opens takes its session settings from."""
        return {
            "DBT_TARGET": "postgres",
            "PGOPTIONS": self.options,
            "TTATTR_PG_HOST": self.host,
            "TTATTR_PG_PORT": str(self.port),
            "TTATTR_PG_USER": self.user,
            "TTATTR_PG_PASSWORD": self.password,
            "TTATTR_PG_DBNAME": self.dbname,
        }


def postgres_warehouse() -> PostgresWarehouse | None:
    """The PostgreSQL warehouse WAREHOUSE_URL names; None (unset): the DuckDB file at WAREHOUSE_PATH."""
    raw = (os.environ.get("WAREHOUSE_URL") or "").strip()
    return PostgresWarehouse.from_url(raw) if raw else None


def warehouse_path() -> Path:
    return Path(os.environ.get("WAREHOUSE_PATH") or "./data/warehouse.duckdb").resolve()


def analytics_path(warehouse: Path | None = None) -> Path:
    """The analysts' copy (ANALYTICS_PATH): unset, `analytics.duckdb` beside the warehouse."""
    raw = os.environ.get("ANALYTICS_PATH")
    if raw:
        return Path(raw).resolve()
    return (warehouse or warehouse_path()).with_name("analytics.duckdb")


def report_path(warehouse: Path | None = None) -> Path:
    """The marketing report (REPORT_PATH): unset, `marketing_report.html` beside the warehouse."""
    raw = os.environ.get("REPORT_PATH")
    if raw:
        return Path(raw).resolve()
    return (warehouse or warehouse_path()).with_name("marketing_report.html")


def analytics_publish_seconds() -> float:
    """ANALYTICS_PUBLISH_SECONDS (default 60): a run the landing sensor started publishes the analysts' copy only when
    the last one is at least this old (the automation publishes what such runs left, once none is in progress)."""
    value = float(os.environ.get("ANALYTICS_PUBLISH_SECONDS") or 60)
    if value < 0:
        raise ValueError("ANALYTICS_PUBLISH_SECONDS must be 0 or more")
    return value


# DuckDB's compressions of long text (FSST), which the warehouse writes go without unless DUCKDB_COMPRESS_TEXT=true
TEXT_COMPRESSIONS = "fsst,dict_fsst"


def disabled_compression_methods() -> str:
    """What DuckDB may not use when the warehouse is written: its text compressions, unless DUCKDB_COMPRESS_TEXT is
    true. Compressing JSON and other long text cost DuckDB more than the rest of writing it (5 of the 8 s of its own
    reader filling a table from 1 GB of events; a fifth of a full dbt build); without it the file is ~2x larger."""
    compress = (os.environ.get("DUCKDB_COMPRESS_TEXT") or "false").strip().lower()
    if compress not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"DUCKDB_COMPRESS_TEXT must be true or false, not {compress!r}")
    return "" if compress in ("true", "1", "yes") else TEXT_COMPRESSIONS
