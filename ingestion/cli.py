"""Load the landing zone into the warehouse without Dagster (the Dagster assets call the same code)."""

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
    with duckdb.connect(args.warehouse) as con:
        for source, r in load_all(con, args.landing_dir).items():
            print(
                f"{source}: {r.files} files, {r.loaded_rows} new rows, {r.duplicate_rows} duplicates, "
                f"{r.quarantined_rows} quarantined"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
