"""Configuration from the environment (see .env.example), with the embedded defaults."""

from __future__ import annotations

import os
from pathlib import Path


def owner_only_files() -> None:
    """Make every file and folder this process creates from now on readable by its owner only (0600 and 0700):
    landing files, segments, the warehouse and its write-ahead log, dbt's and Dagster's files all hold personal data
    or can. DuckDB, dbt and Dagster create files with the process's umask, so the umask is the one place that covers
    them all; the services, the code location and the command lines call this first."""
    os.umask(0o077)


def landing_dir() -> Path:
    return Path(os.environ.get("LANDING_DIR") or "./data/landing").resolve()


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
