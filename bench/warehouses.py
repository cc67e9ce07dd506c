"""Benchmark: the DuckDB file and a PostgreSQL warehouse side by side, over the same simulated world, in one run.

Each warehouse gets the same steps, outside Dagster (whose own cost is the same on both; bench/pipeline.py
measures it): load the landing zone (``ingestion.loader`` / ``ingestion.postgres_loader``), `dbt build` (the
`duckdb` / `postgres` target, two threads), and a TikTok delivery without credentials (every eligible conversion
recorded `dry_run` in the ledger). First over a world of about N tracking events (the full run), then over about 1%
more (an increment, built incrementally). PostgreSQL is a throwaway PostgreSQL 15 server started from the installed
binaries as the tests start it (``--postgres-url`` to use another), with the settings Debian installs it with,
fsync off (``--postgres-setting work_mem=64MB`` for others).

Goal (issue 21): PostgreSQL within 3 times DuckDB's time, on the full run and on the increment. Run with
`make bench-pipeline` or `python -m bench.warehouses --tracking-events 1000000`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import duckdb

from bench.http_load import cores
from bench.pipeline import EVENTS_PER_VISITOR, count_lines, one_percent_more
from ingestion import loader, postgres_loader
from ingestion.config import PostgresWarehouse
from reverse_etl.deliver import DeliverySettings, deliver
from reverse_etl.postgres import deliver_postgres
from simulator.cli import write_world
from simulator.world import WorldConfig

ROOT = Path(__file__).resolve().parents[1]
DBT = Path(sys.executable).parent / "dbt"


def dbt_build(env: dict, work: Path, name: str) -> None:
    out = subprocess.run(
        [str(DBT), "build", "--project-dir", str(ROOT / "dbt_project"), "--profiles-dir", str(ROOT / "dbt_project"),
         "--target-path", str(work / f"dbt_target_{name}"), "--log-path", str(work / f"dbt_logs_{name}")],
        env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"dbt build failed on {name}:\n{out.stdout[-3000:]}")


def run_duckdb(work: Path) -> dict[str, float]:
    path = work / "warehouse.duckdb"
    seconds = {}
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        loader.load_all(con, work / "landing")
    seconds["load"] = time.perf_counter() - started
    started = time.perf_counter()
    dbt_build({"WAREHOUSE_PATH": str(path)}, work, "duckdb")
    seconds["dbt build"] = time.perf_counter() - started
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        deliver(con, DeliverySettings())
    seconds["delivery"] = time.perf_counter() - started
    return seconds


def run_postgres(work: Path, warehouse: PostgresWarehouse) -> dict[str, float]:
    seconds = {}
    started = time.perf_counter()
    with warehouse.connection() as pg:
        postgres_loader.load_all(pg, work / "landing")
    seconds["load"] = time.perf_counter() - started
    started = time.perf_counter()
    dbt_build(warehouse.dbt_env(), work, "postgres")
    seconds["dbt build"] = time.perf_counter() - started
    started = time.perf_counter()
    with warehouse.connection() as pg:
        deliver_postgres(pg, DeliverySettings())
    seconds["delivery"] = time.perf_counter() - started
    return seconds


def report(label: str, duck: dict[str, float], pg: dict[str, float]) -> float:
    total_duck, total_pg = sum(duck.values()), sum(pg.values())
    steps = ", ".join(f"{k} {duck[k]:.1f} / {pg[k]:.1f}" for k in duck)
    ratio = total_pg / total_duck
    print(f"{label}: DuckDB {total_duck:.1f} s, PostgreSQL {total_pg:.1f} s ({ratio:.2f}x)")
    print(f"  seconds DuckDB / PostgreSQL: {steps}")
    return ratio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.warehouses", description=__doc__)
    ap.add_argument("--tracking-events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2100)
    ap.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    ap.add_argument("--postgres-url", help="an empty PostgreSQL database to use (default: a throwaway server)")
    ap.add_argument(
        "--postgres-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server parameter of the throwaway server (repeatable), e.g. work_mem=64MB",
    )
    args = ap.parse_args(argv)
    print(f"cores: {cores()}")
    with ExitStack() as stack:
        work = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        if args.postgres_url:
            warehouse = PostgresWarehouse.from_url(args.postgres_url)
        else:
            sys.path.insert(0, str(ROOT))
            from simulator.postgres_server import postgres_server

            settings = dict(setting.split("=", 1) for setting in args.postgres_setting)
            print("PostgreSQL: a throwaway server, fsync off" + "".join(f", {k}={v}" for k, v in settings.items()))
            host, port, user = stack.enter_context(postgres_server(settings))
            warehouse = PostgresWarehouse(host=host, port=port, user=user, password="", dbname="postgres")
        visitors = max(10, int(args.tracking_events / EVENTS_PER_VISITOR))
        write_world(WorldConfig(visitors=visitors, seed=args.seed), work / "landing", work / "truth.jsonl")
        lines = count_lines(work / "landing")
        print(
            f"world: {visitors:,} visitors -> {lines['tracking']:,} tracking events, {lines['stripe_events']:,} Stripe"
        )
        full = report("full run", run_duckdb(work), run_postgres(work, warehouse))
        extra = one_percent_more(visitors)
        write_world(WorldConfig(visitors=extra, seed=args.seed + 1000), work / "landing", work / "more.jsonl")
        more = report(f"+1% (+{extra:,} visitors)", run_duckdb(work), run_postgres(work, warehouse))
        verdict = "met" if max(full, more) <= 3 else "NOT met"
        print(f"goal PostgreSQL within 3x DuckDB on the full run and the increment: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
