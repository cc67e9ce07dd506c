"""Run a dbt command on the configured warehouse, outside Dagster: `python -m ingestion.warehouse_dbt build`.

With WAREHOUSE_URL set it selects the project's `postgres` target and passes the URL's parts in the environment
dbt_project/profiles.yml reads (never on a command line, where the password would show); unset, the DuckDB file at
WAREHOUSE_PATH. Arguments after the module name go to dbt as they are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ingestion import config

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


def dbt_env() -> dict[str, str]:
    postgres = config.postgres_warehouse()
    if postgres is not None:
        return postgres.dbt_env()
    return {"WAREHOUSE_PATH": str(config.warehouse_path())}


def main(argv: list[str] | None = None) -> int:
    config.owner_only_files()
    args = sys.argv[1:] if argv is None else argv
    dbt = Path(sys.executable).parent / "dbt"
    command = [
        str(dbt) if dbt.exists() else "dbt",
        *args,
        "--project-dir",
        str(PROJECT),
        "--profiles-dir",
        str(PROJECT),
    ]
    return subprocess.run(command, env={**os.environ, **dbt_env()}).returncode


if __name__ == "__main__":
    raise SystemExit(main())
