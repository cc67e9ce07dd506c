"""Benchmark: the identity stitch (int_identity_components) on a graph of N edges with string identifiers,
against networkx's connected components on the same edges, in the same run, with peak memory of each.

Goal (issue 5): at least 5 times faster than networkx. Run with `make bench` or
`python -m bench.identity --edges 1000000`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import time
import tracemalloc
from pathlib import Path

import duckdb
import networkx as nx
import pandas as pd

MODEL = Path(__file__).resolve().parents[1] / "dbt_project" / "models" / "intermediate" / "int_identity_components.py"
KINDS = ["browser", "email", "phone", "stripe_customer", "purchase"]


def load_model():
    spec = importlib.util.spec_from_file_location("int_identity_components", MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def graph(n_edges: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Identity-shaped: many small components (a person's browsers, emails, phones, purchases), some chains."""
    rng = random.Random(seed)
    n_nodes = int(n_edges * 0.8)
    names = [f"{KINDS[i % 5]}:{i:09d}-{rng.getrandbits(40):010x}" for i in range(n_nodes)]
    left, right = [], []
    i = 0
    while len(left) < n_edges:
        size = rng.choice((2, 2, 3, 3, 4, 5, 8, 20))
        members = [rng.randrange(n_nodes) for _ in range(size)]
        for a, b in zip(members, members[1:], strict=False):
            left.append(names[a])
            right.append(names[b])
        i += 1
    nodes = pd.DataFrame({"node": names, "node_type": [n.split(":")[0] for n in names]})
    edges = pd.DataFrame({"left_node": left[:n_edges], "right_node": right[:n_edges]})
    return nodes, edges


def measured(fn):
    """Time without tracing (tracemalloc slows Python-heavy code several-fold), then peak Python-heap memory in
    a second, traced run. DuckDB's own buffers are not traced: its share is its memory limit at most."""
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.identity", description=__doc__)
    ap.add_argument("--edges", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}")
    nodes, edges = graph(args.edges)
    print(f"graph: {len(edges):,} edges among {len(nodes):,} string identifiers")
    model = load_model()
    con = duckdb.connect()
    con.register("nodes_in", nodes)
    con.register("edges_in", edges)
    ours, ours_s, ours_mib = measured(lambda: model.stitch(con, "nodes_in", "edges_in").df())

    def reference():
        g = nx.Graph()
        g.add_nodes_from(nodes["node"])
        g.add_edges_from(zip(edges["left_node"], edges["right_node"], strict=False))
        return list(nx.connected_components(g))

    theirs, nx_s, nx_mib = measured(reference)
    same = ours["customer_id"].nunique() == len(theirs)
    print(
        f"stitch (DuckDB + scipy.sparse.csgraph): {ours_s:.2f} s, peak {ours_mib:,.0f} MiB traced, "
        f"{ours['customer_id'].nunique():,} customers"
    )
    print(
        f"networkx (baseline, same run):          {nx_s:.2f} s, peak {nx_mib:,.0f} MiB traced, "
        f"{len(theirs):,} components"
    )
    print(
        f"speed-up: {nx_s / ours_s:.1f}x (goal >= 5x: {'met' if nx_s / ours_s >= 5 else 'NOT met'}); "
        f"same number of components: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
