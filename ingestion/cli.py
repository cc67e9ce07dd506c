"""Load the landing zone into the warehouse without Dagster (the Dagster assets call the same code): the DuckDB
file (--warehouse, WAREHOUSE_PATH) or, when WAREHOUSE_URL is set, that PostgreSQL database."""

from __future__ import annotations

import argparse

import duckdb

from ingestion import config
from ingestion.loader import load_all


def main(argv: list[str] | None = None) -> int:
    config.owner_only_files()
    ap = argparse.ArgumentParser(prog="python -m ingestion.cli", description=__doc__)
    ap.add_argument("--landing-dir", default=str(config.landing_dir()))
    ap.add_argument("--warehouse", default=str(config.warehouse_path()))
    args = ap.parse_args(argv)
    if (postgres := config.postgres_warehouse()) is not None:  # WAREHOUSE_URL
        from ingestion import postgres_loader

        with postgres.connection() as pg:
            loads = postgres_loader.load_all(pg, args.landing_dir)
    else:
        with duckdb.connect(args.warehouse) as con:
            loads = load_all(con, args.landing_dir)
    for source, r in loads.items():
        print(
            f"{source}: {r.files} files, {r.loaded_rows} new rows, {r.duplicate_rows} duplicates, "
            f"{r.quarantined_rows} quarantined"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
