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
    edges += list(zip(chain[:2500], chain[1:2500]))          # a 2,500-node path: worst case for label passes
    edges += list(zip(chain[2500:4999], chain[2501:5000]))   # and another one
    edges += [(rng.choice(big), rng.choice(big)) for _ in range(12000)]  # one big random component
    for i in range(0, 6000, 20):                              # stars around hubs
        edges += [(rest[i], rest[j]) for j in range(i + 1, i + 20)]
    edges += list(zip(rest[6000:8000:2], rest[6001:8000:2]))  # pairs; the remaining nodes are singletons
    edges += [(b, a) for a, b in edges[:100]]                 # the same edge both ways
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
    frame = stitch(["browser:b1", "email:a@x.co", "stripe_customer:cus_9", "browser:b2"],
                   [("browser:b1", "email:a@x.co"), ("email:a@x.co", "stripe_customer:cus_9")]).set_index("node")
    import hashlib
    expected = "cust_" + hashlib.md5(b"stripe_customer:cus_9").hexdigest()[:20]
    assert frame.loc["browser:b1", "customer_id"] == expected == frame.loc["email:a@x.co", "customer_id"]
    assert frame.loc["browser:b2", "customer_id"] != expected and frame.loc["browser:b2", "component_size"] == 1


def test_an_edge_to_an_unknown_identifier_is_an_error():
    with pytest.raises(ValueError, match="not among the nodes"):
        stitch(["email:a"], [("email:a", "email:b")])


def restitched(nodes_before, edges_before, nodes_after, edges_after) -> pd.DataFrame:
    """The incremental stitch: the table built from the first graph, then what restitch() gives for the second
    applied to it as the model's delete+insert and post-hook do."""
    con = duckdb.connect()
    model = load_model()

    def register(nodes, edges):
        con.register("nodes_in", pd.DataFrame({"node": nodes, "node_type": [n.split(":")[0] for n in nodes]}))
        con.register("edges_in", pd.DataFrame(edges, columns=["left_node", "right_node"]))

    register(nodes_before, edges_before)
    model.stitch(con, "nodes_in", "edges_in").create("built")
    register(nodes_after, edges_after)
    changed = model.restitch(con, "nodes_in", "edges_in", "built").df()
    con.register("changed", changed)
    con.execute("delete from built where node in (select node from changed)").fetchall()
    con.execute("insert into built select * from changed").fetchall()
    con.execute("delete from built where node not in (select node from nodes_in)").fetchall()
    frame = con.execute("select * from built").df()
    frame.attrs["restitched"] = len(changed)
    return frame


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    cols = list(a.columns)
    return a.sort_values("node")[cols].reset_index(drop=True).equals(b.sort_values("node")[cols].reset_index(drop=True))


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_restitching_what_changed_gives_what_a_full_stitch_gives(seed):
    rng = random.Random(seed)
    nodes, edges = generated_graph(seed)
    # the next build: new identifiers (some alone, some joining old components, some merging two), edges gone
    # (splitting components, as a refused shared browser does), identifiers gone (a voided purchase)
    new_nodes = [f"email:new-{seed}-{i}" for i in range(300)]
    more_edges = [(n, rng.choice(nodes)) for n in new_nodes[:150]]
    more_edges += [(rng.choice(nodes), rng.choice(nodes)) for _ in range(40)]
    more_edges += list(zip(new_nodes[150:200], new_nodes[200:250]))
    kept_edges = [e for e in edges if rng.random() > 0.01]
    gone = set(rng.sample(nodes, 30))
    after_nodes = [n for n in nodes if n not in gone] + new_nodes
    after_edges = [e for e in kept_edges + more_edges if e[0] not in gone and e[1] not in gone]

    incremental = restitched(nodes, edges, after_nodes, after_edges)
    full = stitch(after_nodes, after_edges)
    assert same_rows(incremental, full)
    assert 0 < incremental.attrs["restitched"] < len(full), "only the components that changed are stitched again"


def test_nothing_changed_restitches_nothing():
    nodes, edges = generated_graph(6)
    incremental = restitched(nodes, edges, nodes, edges)
    assert incremental.attrs["restitched"] == 0
    assert same_rows(incremental, stitch(nodes, edges))


def test_an_edge_refused_later_splits_its_component():
    nodes = ["browser:shared", "email:a@x.co", "email:b@x.co", "stripe_customer:cus_a"]
    edges = [("browser:shared", "email:a@x.co"), ("browser:shared", "email:b@x.co"),
             ("stripe_customer:cus_a", "email:a@x.co")]
    incremental = restitched(nodes, edges, nodes, edges[2:]).set_index("node")
    assert incremental.loc["email:a@x.co", "customer_id"] == incremental.loc["stripe_customer:cus_a", "customer_id"]
    assert incremental.loc["email:b@x.co", "customer_id"] != incremental.loc["email:a@x.co", "customer_id"]
    assert incremental.loc["browser:shared", "component_size"] == 1
    assert same_rows(incremental.reset_index(), stitch(nodes, edges[2:]))
