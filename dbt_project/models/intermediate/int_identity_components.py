"""Connected components of the identity graph: one stitched customer per component.

DuckDB numbers the identifiers and turns the used edges into pairs of integers (joins, in parallel); scipy's
sparse connected components (a linear-time traversal in C) labels the components; DuckDB picks each
component's anchor and names the customer. Exact, converged in one pass, and cost that grows with the number
of edges, not with the square of component sizes as reachable-set recursive CTEs do.

A component's customer id is derived from its most stable anchor: a Stripe customer if it has one, else an
email, a phone, a site user id, a purchase, a browser; ties by the identifier's text.
"""

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ANCHOR_RANK = {"stripe_customer": 0, "email": 1, "phone": 2, "user": 3, "purchase": 4, "browser": 5}


def component_labels(n_nodes: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label of each node 0..n_nodes-1 over the undirected edges left[k]-right[k]."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n_nodes, n_nodes)).tocsr()
    return connected_components(graph, directed=False)[1]


def stitch(con, nodes: str, edges: str):
    """``nodes``: a table or view with node, node_type; ``edges``: one with left_node, right_node (the used
    edges). Returns a DuckDB relation: node, node_type, node_value, customer_id, component_size."""
    rank = " ".join(f"when '{t}' then {r}" for t, r in ANCHOR_RANK.items())
    con.execute(f"""
        create or replace temp table _stitch_nodes as
        select node, node_type, cast(row_number() over () - 1 as integer) as i,
               case node_type {rank} else 9 end as anchor_rank
        from {nodes}
    """).fetchall()  # DuckDB 2 keeps a statement's result open until it is fetched
    pairs = con.execute(f"""
        select l.i as l, r.i as r
        from {edges} e
        join _stitch_nodes l on l.node = e.left_node
        join _stitch_nodes r on r.node = e.right_node
    """).fetchnumpy()
    n_nodes, n_edges = con.execute(f"select (select count(*) from _stitch_nodes), (select count(*) from {edges})"
                                   ).fetchall()[0]
    if len(pairs["l"]) != n_edges:
        raise ValueError(f"{n_edges - len(pairs['l'])} edges name an identifier that is not among the nodes")
    labels = component_labels(n_nodes, pairs["l"], pairs["r"])
    con.register("_stitch_labels", pd.DataFrame({"i": np.arange(n_nodes, dtype=np.int32), "label": labels}))
    return con.sql("""
        with labelled as (
            select n.node, n.node_type, n.anchor_rank, l.label
            from _stitch_nodes n join _stitch_labels l using (i)
        ),
        anchors as (
            select label, arg_min(node, (anchor_rank, node)) as anchor, count(*) as component_size
            from labelled group by label
        )
        -- a node is '<type>:<value>' and types hold no ':', so the value is everything after the first one (a
        -- value may hold colons: an anonymousId 'b-victim:x' must stay its own browser, not become 'b-victim')
        select labelled.node, labelled.node_type, substr(labelled.node, strpos(labelled.node, ':') + 1) as node_value,
               'cust_' || left(md5(anchors.anchor), 20) as customer_id, anchors.component_size
        from labelled join anchors using (label)
    """)


def model(dbt, session):
    dbt.config(materialized="table")
    dbt.ref("int_identity_nodes").create_view("_identity_nodes_in", replace=True)
    dbt.ref("int_identity_edges").filter("is_used").create_view("_identity_edges_in", replace=True)
    return stitch(session, "_identity_nodes_in", "_identity_edges_in")
