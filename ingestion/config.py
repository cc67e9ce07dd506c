"""Configuration from the environment (see .env.example), with the embedded defaults."""

from __future__ import annotations

import os
from pathlib import Path


def landing_dir() -> Path:
    return Path(os.environ.get("LANDING_DIR") or "./data/landing").resolve()


def warehouse_path() -> Path:
    return Path(os.environ.get("WAREHOUSE_PATH") or "./data/warehouse.duckdb").resolve()
