"""Connected components of the identity graph: one stitched customer per component.

Union-find with path halving and union by size over the used edges: it runs to convergence in one pass,
in time that grows with the number of edges (not with the square of component sizes, as reachable-set
recursive CTEs do), and gives exactly the connected components.

A component's customer id is derived from its most stable anchor: a Stripe customer if it has one,
else an email, a phone, a site user id, a purchase, a browser; ties by the identifier's text.
"""

import hashlib

import pandas as pd

ANCHOR_RANK = {"stripe_customer": 0, "email": 1, "phone": 2, "user": 3, "purchase": 4, "browser": 5}


def model(dbt, session):
    dbt.config(materialized="table")
    nodes = dbt.ref("int_identity_nodes").order("node").fetchall()
    edges = dbt.ref("int_identity_edges").filter("is_used").project("left_node, right_node").fetchall()

    index = {node: i for i, (node, _) in enumerate(nodes)}
    parent = list(range(len(nodes)))
    size = [1] * len(nodes)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for left, right in edges:
        a, b = find(index[left]), find(index[right])
        if a == b:
            continue
        if size[a] < size[b]:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]

    anchors: dict[int, tuple] = {}
    roots = []
    for i, (node, node_type) in enumerate(nodes):
        r = find(i)
        roots.append(r)
        key = (ANCHOR_RANK.get(node_type, 9), node)
        if r not in anchors or key < anchors[r]:
            anchors[r] = key
    customer_ids = {r: "cust_" + hashlib.md5(k[1].encode()).hexdigest()[:20] for r, k in anchors.items()}
    return pd.DataFrame({
        "node": [n for n, _ in nodes],
        "node_type": [t for _, t in nodes],
        "node_value": [n.split(":", 1)[1] for n, _ in nodes],
        "customer_id": [customer_ids[r] for r in roots],
        "component_size": [size[r] for r in roots],
    })
