"""Connected components of the identity graph: one stitched customer per component.

DuckDB numbers the identifiers and turns the used edges into pairs of integers (joins, in parallel); scipy's
sparse connected components (a linear-time traversal in C) labels the components; DuckDB picks each
component's anchor and names the customer. Exact, converged in one pass, and cost that grows with the number
of edges, not with the square of component sizes as reachable-set recursive CTEs do.

A component's customer id is derived from its most stable anchor: a Stripe customer if it has one, else an
email, a phone, a site user id, a purchase, a browser; ties by the identifier's text.

Incremental: only the components that new or changed edges touch are stitched again. Each row keeps its
component's fingerprint, the XOR of a hash of every used edge inside it. A build compares the used edges of
today, grouped by the component their endpoints had, with those fingerprints. A component is stitched again
when an edge now joins it to another component or to a new identifier, when its own edges differ (an edge
added, or one gone or refused by the guards, which may split it), or when one of its identifiers is gone. All
of its identifiers are stitched again together with the new identifiers, over today's used edges among them;
the rows of the rest are kept. Identifiers that are gone are deleted after the build (post-hook in
_intermediate.yml). The orchestration rebuilds in full when the project changes.
"""

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ANCHOR_RANK = {"stripe_customer": 0, "email": 1, "phone": 2, "user": 3, "purchase": 4, "browser": 5}
# a used edge's contribution to its component's fingerprint (XORed, so the order of the edges does not matter)
EDGE_HASH = "hash(left_node, right_node)"


def component_labels(n_nodes: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label of each node 0..n_nodes-1 over the undirected edges left[k]-right[k]."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n_nodes, n_nodes)).tocsr()
    return connected_components(graph, directed=False)[1]


def stitch(con, nodes: str, edges: str):
    """``nodes``: a table or view with node, node_type; ``edges``: one with left_node, right_node (the used
    edges). Returns a DuckDB relation: node, node_type, node_value, customer_id, component_size,
    component_fingerprint."""
    rank = " ".join(f"when '{t}' then {r}" for t, r in ANCHOR_RANK.items())
    con.execute(f"""
        create or replace temp table _stitch_nodes as
        select node, node_type, cast(row_number() over () - 1 as integer) as i,
               case node_type {rank} else 9 end as anchor_rank
        from {nodes}
    """).fetchall()  # DuckDB 2 keeps a statement's result open until it is fetched
    con.execute(f"""
        create or replace temp table _stitch_pairs as
        select l.i as l, r.i as r, {EDGE_HASH} as h
        from {edges} e
        join _stitch_nodes l on l.node = e.left_node
        join _stitch_nodes r on r.node = e.right_node
    """).fetchall()
    pairs = con.execute("select l, r from _stitch_pairs").fetchnumpy()
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
        ),
        fingerprints as (
            select l.label, bit_xor(p.h) as component_fingerprint
            from _stitch_pairs p join _stitch_labels l on l.i = p.l
            group by l.label
        )
        select labelled.node, labelled.node_type, split_part(labelled.node, ':', 2) as node_value,
               'cust_' || left(md5(anchors.anchor), 20) as customer_id, anchors.component_size,
               coalesce(fingerprints.component_fingerprint, cast(0 as ubigint)) as component_fingerprint
        from labelled join anchors using (label) left join fingerprints using (label)
    """)


def restitch(con, nodes: str, edges: str, built: str):
    """Stitch again only what changed since ``built`` (this model's table: node, customer_id,
    component_fingerprint). Returns the rows of the identifiers stitched again, as ``stitch`` does; the rows of
    the other identifiers in ``built`` stay as they are, except those no longer in ``nodes``, which are gone."""
    con.execute(f"""
        create or replace temp table _restitch_edges as
        select e.left_node, e.right_node, {EDGE_HASH} as h,
               l.customer_id as left_customer, r.customer_id as right_customer
        from {edges} e
        left join {built} l on l.node = e.left_node
        left join {built} r on r.node = e.right_node
    """).fetchall()
    con.execute(f"""
        create or replace temp table _restitch_components as
        -- an edge between two components, or to an identifier not stitched before
        select left_customer as customer_id from _restitch_edges
        where left_customer is distinct from right_customer and left_customer is not null
        union
        select right_customer from _restitch_edges
        where left_customer is distinct from right_customer and right_customer is not null
        union
        -- a component whose own edges are not the ones it was stitched from
        select built.customer_id
        from (select distinct customer_id, component_fingerprint from {built}) as built
        left join (select left_customer as customer_id, bit_xor(h) as fingerprint from _restitch_edges
                   where left_customer = right_customer group by left_customer) as today using (customer_id)
        where coalesce(today.fingerprint, cast(0 as ubigint)) <> built.component_fingerprint
        union
        -- a component that lost an identifier
        select customer_id from {built} where node not in (select node from {nodes})
    """).fetchall()
    con.execute(f"""
        create or replace temp table _restitch_nodes as
        select n.node, n.node_type
        from {nodes} n
        left join {built} b on b.node = n.node
        where b.node is null or b.customer_id in (select customer_id from _restitch_components)
    """).fetchall()
    # every edge that touches these identifiers has both ends among them (an edge to another component makes
    # that component one to stitch again); stitch() checks it
    con.execute("""
        create or replace temp view _restitch_used_edges as
        select left_node, right_node from _restitch_edges
        where left_node in (select node from _restitch_nodes) or right_node in (select node from _restitch_nodes)
    """).fetchall()
    return stitch(con, "_restitch_nodes", "_restitch_used_edges")


def model(dbt, session):
    # the post-hook that deletes identifiers no longer known is in _intermediate.yml
    dbt.config(materialized="incremental", incremental_strategy="delete+insert", unique_key="node",
               on_schema_change="fail")
    dbt.ref("int_identity_nodes").create_view("_identity_nodes_in", replace=True)
    dbt.ref("int_identity_edges").filter("is_used").create_view("_identity_edges_in", replace=True)
    if dbt.is_incremental:
        return restitch(session, "_identity_nodes_in", "_identity_edges_in", str(dbt.this))
    return stitch(session, "_identity_nodes_in", "_identity_edges_in")
