"""Benchmark: the order in which dbt runs ready nodes, in the pipeline's in-process dbt builds.

On a warehouse that `bench.pipeline --workdir DIR` built, forced dbt builds (tag ttattr/force_dbt=true: no new
data, so every model rebuilt in full by the incremental build is rebuilt, and the incremental ones take nothing)
run through Dagster, alternating dbt's own order (least depth in the graph, then name) and the critical-path-first
order of orchestration/dbt_runner.py. Each pair runs back to back, so the machine's changing speed touches both
alike. (Full refreshes keep dbt's own order: commit 2a1a897 applied the other order to them too, and three full
builds were not faster.)

    python -m bench.pipeline --tracking-events 1000000 --workdir /tmp/world
    python -m bench.dbt_order --workdir /tmp/world --pairs 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench.http_load import cores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True, help="a folder that bench.pipeline --workdir filled")
    ap.add_argument("--pairs", type=int, default=4)
    args = ap.parse_args(argv)
    work = Path(args.workdir).resolve()
    if not (work / "warehouse.duckdb").exists():
        raise SystemExit(f"{work}/warehouse.duckdb not found: build it first with "
                         f"python -m bench.pipeline --workdir {work}")
    warehouse = str(work / "warehouse.duckdb")
    os.environ.update({"WAREHOUSE_PATH": warehouse, "LANDING_DIR": str(work / "landing"),
                       "DAGSTER_HOME": str(work / "dagster_home")})

    from dbt.graph.queue import GraphQueue

    from orchestration import dbt_runner
    from orchestration.definitions import build_defs
    from orchestration.defs.dbt import DBT_PROJECT_DIR, build_target_path
    from orchestration.instance import get_instance

    dbts_own = GraphQueue._get_scores  # before the runner replaces it

    class _Depth:
        _grouped_topological_sort = staticmethod(GraphQueue._grouped_topological_sort)

    orders = {"critical path first": dbt_runner.critical_path_scores,
              "dbt's own": lambda graph, seconds: dbts_own(_Depth(), graph)}
    job = build_defs().resolve_job_def("pipeline")
    instance = get_instance()
    print(f"# dbt node order, forced incremental builds, {cores()} cores, "
          f"{args.pairs} pairs; workdir {work}")
    elapsed: dict[str, list[float]] = {name: [] for name in orders}
    for pair in range(args.pairs + 1):  # the first pair warms the process and the target folder: not counted
        for name, scores in (orders.items() if pair % 2 else reversed(orders.items())):
            dbt_runner.critical_path_scores = scores
            started = time.perf_counter()
            result = job.execute_in_process(instance=instance, raise_on_error=False,
                                            tags={"ttattr/force_dbt": "true"},
                                            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
            if not result.success:
                raise SystemExit("a pipeline run failed")
            target = DBT_PROJECT_DIR / build_target_path(warehouse)
            dbt_elapsed = json.loads((target / "run_results.json").read_text())["elapsed_time"]
            if pair:
                elapsed[name].append(dbt_elapsed)
            print(f"{'warm-up' if not pair else f'pair {pair}':8s} {name:20s} dbt {dbt_elapsed:6.2f} s, "
                  f"run {time.perf_counter() - started:6.2f} s", flush=True)
    ours, theirs = elapsed["critical path first"], elapsed["dbt's own"]
    faster = sum(a < b for a, b in zip(ours, theirs))
    print(f"critical path first: mean {statistics.mean(ours):.2f} s; dbt's own order: mean "
          f"{statistics.mean(theirs):.2f} s; faster in {faster} of {len(ours)} pairs, by "
          f"{statistics.mean(b - a for a, b in zip(ours, theirs)):.2f} s on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
