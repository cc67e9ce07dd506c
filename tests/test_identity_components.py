"""The stitch's connected components against networkx's on the same edges."""

import importlib.util
import random
from pathlib import Path

import duckdb
import networkx as nx
import pandas as pd
import pytest

MODEL = Path(__file__).resolve().parents[1] / "dbt_project" / "models" / "intermediate" / "int_identity_components.py"


def load_model():
    spec = importlib.util.spec_from_file_location("int_identity_components", MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated_graph(seed: int, n_nodes: int = 20000) -> tuple[list[str], list[tuple[str, str]]]:
    """Long chains (each link only to the next), one large dense-ish component, stars, pairs and singletons."""
    rng = random.Random(seed)
    kinds = ["browser", "email", "phone", "stripe_customer", "purchase", "user"]
    nodes = [f"{rng.choice(kinds)}:{i:06d}-{rng.getrandbits(32):08x}" for i in range(n_nodes)]
    order = nodes[:]
    rng.shuffle(order)
    edges = []
    chain, big, rest = order[:5000], order[5000:9000], order[9000:]
    edges += list(zip(chain[:2500], chain[1:2500], strict=False))  # a 2,500-node path: worst case for label passes
    edges += list(zip(chain[2500:4999], chain[2501:5000], strict=False))  # and another one
    edges += [(rng.choice(big), rng.choice(big)) for _ in range(12000)]  # one big random component
    for i in range(0, 6000, 20):  # stars around hubs
        edges += [(rest[i], rest[j]) for j in range(i + 1, i + 20)]
    edges += list(zip(rest[6000:8000:2], rest[6001:8000:2], strict=False))  # pairs; the remaining nodes are singletons
    edges += [(b, a) for a, b in edges[:100]]  # the same edge both ways
    return nodes, edges


def as_partition(groups) -> set[frozenset]:
    return {frozenset(g) for g in groups}


def stitch(nodes: list[str], edges: list[tuple[str, str]]) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("nodes_in", pd.DataFrame({"node": nodes, "node_type": [n.split(":")[0] for n in nodes]}))
    con.register("edges_in", pd.DataFrame(edges, columns=["left_node", "right_node"]))
    return load_model().stitch(con, "nodes_in", "edges_in").df()


@pytest.mark.parametrize("seed", [1, 2])
def test_same_partition_as_networkx(seed):
    nodes, edges = generated_graph(seed)
    frame = stitch(nodes, edges)
    ours = as_partition(frame.groupby("customer_id")["node"].apply(list))
    g = nx.Graph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    reference = as_partition(nx.connected_components(g))
    assert ours == reference
    sizes = frame.groupby("customer_id").size()
    assert sizes.max() >= 2500 and (sizes == 1).sum() > 1000
    assert (frame["component_size"] == frame.groupby("customer_id")["node"].transform("size")).all()


def test_customer_id_follows_the_most_stable_anchor():
    frame = stitch(
        ["browser:b1", "email:a@x.co", "stripe_customer:cus_9", "browser:b2"],
        [("browser:b1", "email:a@x.co"), ("email:a@x.co", "stripe_customer:cus_9")],
    ).set_index("node")
    import hashlib

    expected = "cust_" + hashlib.md5(b"stripe_customer:cus_9").hexdigest()[:20]
    assert frame.loc["browser:b1", "customer_id"] == expected == frame.loc["email:a@x.co", "customer_id"]
    assert frame.loc["browser:b2", "customer_id"] != expected and frame.loc["browser:b2", "component_size"] == 1


def test_an_edge_to_an_unknown_identifier_is_an_error():
    with pytest.raises(ValueError, match="not among the nodes"):
        stitch(["email:a"], [("email:a", "email:b")])
