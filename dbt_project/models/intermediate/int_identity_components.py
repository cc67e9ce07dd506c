"""Connected components of the identity graph: one stitched customer per component.

DuckDB numbers the identifiers and turns the used edges into pairs of integers (joins, in parallel); scipy's
sparse connected components (a linear-time traversal in C) labels the components; DuckDB picks each
component's anchor and names the customer. Exact, converged in one pass, and cost that grows with the number
of edges, not with the square of component sizes as reachable-set recursive CTEs do.

A new component's customer id is derived from its most stable anchor: a Stripe customer if it has one, else an
email, a phone, a site user id, a purchase, a browser; ties by the identifier's text. Once given, an id stays
(analysts' saved queries and dashboards join on it): the ids every identifier had are kept in
`monitoring.customer_ids` (not a model, so a full rebuild keeps it too). A component keeps the id most of whose
identifiers it holds; when several ids come together (a merge), the oldest survives and the others are recorded
in `monitoring.customer_id_changes` (`marts.customer_id_aliases` reads it); the part that leaves a component (a
split) gets a new id, recorded there too.

Incremental: a run stitches again only the components that can have changed, those holding an identifier that is
new or gone or the end of a used edge that is new or gone since the last build (the edges it stitched are kept in
`monitoring.stitched_edges`), and replaces their rows; every other component, its ids and its size, is what a full
stitch would give again. What changed is found from the rows written since the last build
(`changed_region_since`): the edges' rows stamped since, the pairs their post-hook deleted
(`monitoring.identity_edges_gone`), the browsers with events staged since and the purchases that came or went;
after a full rebuild of the edges alone, by set differences over the whole graph (`changed_region`). The kept edges and the
identifiers to delete are applied by the post-hook, in the transaction that replaces the rows (`stitch_pending`
holds them until then): a build that fails leaves the kept edges as they were with the rows they describe.
Every row the build wrote carries the build's stamp (`built_at`, set by that post-hook), so a model downstream tells
whose identifiers were stitched again since its own last build without comparing every row.
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


REGISTRY = "monitoring.customer_ids"
CHANGES = "monitoring.customer_id_changes"


def stitch(con, nodes: str, edges: str, registry: str | None = None):
    """``nodes``: a table or view with node, node_type; ``edges``: one with left_node, right_node (the used
    edges); ``registry``: the ids given before (node, customer_id, since), kept where they can be (see above;
    without it every id comes from its anchor). Returns a DuckDB relation: node, node_type, node_value,
    customer_id, component_size."""
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
    n_nodes, n_edges = con.execute(
        f"select (select count(*) from _stitch_nodes), (select count(*) from {edges})"
    ).fetchall()[0]
    if len(pairs["l"]) != n_edges:
        raise ValueError(f"{n_edges - len(pairs['l'])} edges name an identifier that is not among the nodes")
    labels = component_labels(n_nodes, pairs["l"], pairs["r"])
    con.register("_stitch_labels", pd.DataFrame({"i": np.arange(n_nodes, dtype=np.int32), "label": labels}))
    con.execute("""
        create or replace temp table _stitch_components as
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
               labelled.label, anchors.anchor, anchors.component_size
        from labelled join anchors using (label)
    """).fetchall()
    if registry is None:
        con.execute("""
            create or replace temp table _stitch_ids as
            select distinct label, 'cust_' || left(md5(anchor), 20) as customer_id from _stitch_components
        """).fetchall()
    else:
        _keep_ids(con, registry)
    return con.sql("""
        select c.node, c.node_type, c.node_value, ids.customer_id, c.component_size
        from _stitch_components c join _stitch_ids ids using (label)
    """)


def _keep_ids(con, registry: str) -> None:
    """_stitch_ids (label, customer_id, since, why) from the ids the registry gave before; _stitch_changes (merges
    and splits against it)."""
    con.execute(f"""
        create or replace temp table _stitch_previous as
        select c.label, min(c.anchor) as anchor, r.customer_id as old_id, min(r.since) as since, count(*) as n
        from _stitch_components c join {registry} r using (node)
        group by c.label, r.customer_id
    """).fetchall()
    con.execute("""
        -- an id stays with the component holding most of its identifiers (ties: the smaller anchor)
        create or replace temp table _stitch_kept as
        select label, old_id, since from (
            select *, row_number() over (partition by old_id order by n desc, anchor) as rank from _stitch_previous
        ) where rank = 1
    """).fetchall()
    con.execute(f"""
        create or replace temp table _stitch_ids as
        -- of the ids a component kept, the oldest survives
        with survivors as (
            select label, arg_min(old_id, (since, old_id)) as customer_id, min(since) as since
            from _stitch_kept group by label
        ),
        fresh as (
            select distinct label, anchor, 'cust_' || left(md5(anchor), 20) as candidate
            from _stitch_components where label not in (select label from survivors)
        ),
        taken as (select customer_id from {registry} union select customer_id from survivors)
        select label, customer_id, since from survivors
        union all
        -- a new component, or a part that split off: its anchor's id, unless that id is in use already
        select label,
               case when candidate in (select customer_id from taken)
                    then 'cust_' || left(md5(anchor || '#' || cast(epoch_us(now()) as varchar)), 20)
                    else candidate end,
               now()::timestamp
        from fresh
    """).fetchall()
    con.execute("""
        create or replace temp table _stitch_changes as
        select kept.old_id as old_customer_id, ids.customer_id, 'merged' as why
        from _stitch_kept kept join _stitch_ids ids using (label)
        where kept.old_id <> ids.customer_id
        union all
        select distinct previous.old_id, ids.customer_id, 'split'
        from _stitch_previous previous
        join _stitch_kept kept on kept.old_id = previous.old_id and kept.label <> previous.label
        join _stitch_ids ids on ids.label = previous.label
        where ids.customer_id <> previous.old_id
    """).fetchall()


def remember_ids(con, registry: str = REGISTRY, changes: str = CHANGES) -> None:
    """Write what the last stitch gave (each identifier's id, the merges and splits) to the registry."""
    con.execute(f"""
        insert into {changes}
        select old_customer_id, customer_id, now()::timestamp, why from _stitch_changes
    """).fetchall()
    con.execute(f"""
        insert or replace into {registry}
        select c.node, ids.customer_id, ids.since
        from _stitch_components c join _stitch_ids ids using (label)
        left join {registry} r using (node)
        where r.customer_id is distinct from ids.customer_id
    """).fetchall()


def create_registry(con, registry: str = REGISTRY, changes: str = CHANGES) -> None:
    con.execute(f"create schema if not exists {registry.split('.')[0]}").fetchall()
    con.execute(f"""
        create table if not exists {registry} (node varchar primary key, customer_id varchar not null,
                                              since timestamp not null)
    """).fetchall()
    con.execute(f"""
        create table if not exists {changes} (old_customer_id varchar not null, customer_id varchar not null,
                                             changed_at timestamp not null, why varchar not null)
    """).fetchall()


STITCHED_EDGES = "monitoring.stitched_edges"
PENDING = "monitoring.stitch_pending"
# pairs int_identity_edges deleted (its post-hook, macros/identity/edges_gone.sql), until a stitch has taken them in
EDGES_GONE = "monitoring.identity_edges_gone"


def create_state(con) -> None:
    create_registry(con)
    con.execute(f"create table if not exists {STITCHED_EDGES} (left_node varchar, right_node varchar)").fetchall()
    con.execute(
        f"create table if not exists {PENDING} (change varchar not null, left_node varchar, right_node varchar)"
    ).fetchall()
    con.execute(
        f"create table if not exists {EDGES_GONE} (left_node varchar, right_node varchar, gone_at timestamp)"
    ).fetchall()


def changed_region(con, built: str, nodes: str, edges: str, registry: str = REGISTRY) -> None:
    """_stitch_region_nodes and _stitch_region_edges: the identifiers (and their used edges) of every component that
    can differ from ``built`` (the rows of the last build), against the edges it stitched; and, in PENDING, what the
    post-hook applies: the edges that came and went, the identifiers that are gone."""
    con.execute(f"create or replace temp table _stitch_all_nodes as select node, node_type from {nodes}").fetchall()
    con.execute(f"""
        create or replace temp table _stitch_edge_changes as
        select 'edge_added' as change, left_node, right_node from (
            select left_node, right_node from {edges} except select left_node, right_node from {STITCHED_EDGES})
        union all
        select 'edge_gone', left_node, right_node from (
            select left_node, right_node from {STITCHED_EDGES} except select left_node, right_node from {edges})
    """).fetchall()
    con.execute(f"""
        create or replace temp table _stitch_node_changes as
        select 'node_added' as change, node from _stitch_all_nodes n
        where not exists (select 1 from {built} b where b.node = n.node)
        union all
        select 'node_removed', node from {built} b
        where not exists (select 1 from _stitch_all_nodes n where n.node = b.node)
    """).fetchall()
    _region(con, built, edges, registry, stamped=False)


def _region(con, built: str, edges: str, registry: str, stamped: bool) -> None:
    """From _stitch_edge_changes and _stitch_node_changes: the region to stitch again and, in PENDING, what the
    post-hook applies. ``stamped``: _stitch_all_nodes holds only the identifiers that can have come or gone."""
    # the components to stitch again: those of every touched identifier, and those whose id a returning identifier
    # held before (an id stays with the component holding most of its identifiers: a full stitch weighs them all)
    con.execute(f"""
        create or replace temp table _stitch_region_ids as
        with touched as (
            select node from _stitch_node_changes
            union select left_node from _stitch_edge_changes
            union select right_node from _stitch_edge_changes
        )
        select b.customer_id from {built} b join touched using (node)
        union
        select r.customer_id from {registry} r
        join _stitch_node_changes c on c.node = r.node and c.change = 'node_added'
    """).fetchall()
    if stamped:  # the region's built identifiers that stay, and the new ones
        con.execute(f"""
            create or replace temp table _stitch_region_nodes as
            select b.node, b.node_type from {built} b
            where b.customer_id in (select customer_id from _stitch_region_ids)
              and b.node not in (select node from _stitch_node_changes where change = 'node_removed')
            union all
            select n.node, n.node_type from _stitch_all_nodes n
            where n.node in (select node from _stitch_node_changes where change = 'node_added')
        """).fetchall()
    else:
        con.execute(f"""
            create or replace temp table _stitch_region_nodes as
            select n.node, n.node_type from _stitch_all_nodes n
            left join {built} b using (node)
            where b.node is null or b.customer_id in (select customer_id from _stitch_region_ids)
        """).fetchall()
    # an unchanged used edge joins two identifiers of one built component, a new one two touched identifiers: both
    # ends of every edge out of the region are in it
    con.execute(f"""
        create or replace temp table _stitch_region_edges as
        select e.left_node, e.right_node from {edges} e
        where e.left_node in (select node from _stitch_region_nodes)
    """).fetchall()
    con.execute(f"delete from {PENDING}").fetchall()
    con.execute(f"""
        insert into {PENDING}
        select change, left_node, right_node from _stitch_edge_changes
        union all
        select change, node, null from _stitch_node_changes where change = 'node_removed'
    """).fetchall()

def changed_region_since(con, built: str, sources: dict[str, str], since, registry: str = REGISTRY) -> bool:
    """What :func:`changed_region` finds, from the rows written since ``since`` (the newest stamp of ``built``)
    instead of set differences over the whole graph: the edges' rows written since and the pairs they deleted
    (EDGES_GONE) are the only pairs whose use can differ from the edges stitched; their ends, the browsers with
    events staged since and the purchases that came or went are the only identifiers that can have come or gone
    (tracking events are only ever appended). ``sources``: relations named edges (int_identity_edges, every row),
    tracking, purchases. False, with nothing done, when every edge was written since (a full rebuild of the
    edges: the pairs it dropped are not listed), or nothing was ever stamped."""
    edges, tracking, purchases = sources["edges"], sources["tracking"], sources["purchases"]
    stamp = f"cast('{since}' as timestamp)"
    older = con.execute(f"select count(*) from (select 1 from {edges} where built_at <= {stamp} limit 1)").fetchall()
    if since is None or older[0][0] == 0:
        return False
    con.execute(f"""
        create or replace temp table _stitch_candidates as
        select left_node, right_node from {edges} where built_at > {stamp}
        union
        select left_node, right_node from {EDGES_GONE}
    """).fetchall()
    con.execute(f"""
        create or replace temp table _stitch_edge_changes as
        select 'edge_added' as change, e.left_node, e.right_node from {edges} e
        where e.built_at > {stamp} and e.is_used
          and not exists (select 1 from {STITCHED_EDGES} s where s.left_node = e.left_node and s.right_node = e.right_node)
        union all
        select 'edge_gone', s.left_node, s.right_node from {STITCHED_EDGES} s
        join _stitch_candidates c on c.left_node = s.left_node and c.right_node = s.right_node
        where not exists (select 1 from {edges} e
                          where e.is_used and e.left_node = s.left_node and e.right_node = s.right_node)
    """).fetchall()
    # the identifiers that can have come or gone, and whether each is one now (an edge's end, a tracked browser, a
    # purchase: the node view int_identity_nodes, asked of these only)
    con.execute(f"""
        create or replace temp table _stitch_touched as
        select left_node as node from _stitch_candidates
        union select right_node from _stitch_candidates
        union select 'browser:' || anonymous_id from {tracking} where built_at > {stamp} and anonymous_id is not null
        union select 'purchase:' || purchase_id from {purchases} p
              where not exists (select 1 from {built} b where b.node = 'purchase:' || p.purchase_id)
        union select node from {built} b
              where node_type = 'purchase'
                and not exists (select 1 from {purchases} p where b.node = 'purchase:' || p.purchase_id)
    """).fetchall()
    con.execute(f"""
        create or replace temp table _stitch_all_nodes as
        select left_node as node, left_type as node_type from {edges}
        where left_node in (select node from _stitch_touched)
        union
        select right_node, right_type from {edges} where right_node in (select node from _stitch_touched)
        union
        select 'browser:' || anonymous_id, 'browser' from {tracking}
        where anonymous_id in (select substr(node, 9) from _stitch_touched where node like 'browser:%')
        union
        select 'purchase:' || purchase_id, 'purchase' from {purchases}
        where purchase_id in (select substr(node, 10) from _stitch_touched where node like 'purchase:%')
    """).fetchall()
    con.execute(f"""
        create or replace temp table _stitch_node_changes as
        select 'node_added' as change, node from _stitch_all_nodes n
        where not exists (select 1 from {built} b where b.node = n.node)
        union all
        select 'node_removed', t.node from _stitch_touched t
        where exists (select 1 from {built} b where b.node = t.node)
          and not exists (select 1 from _stitch_all_nodes n where n.node = t.node)
    """).fetchall()
    _region(con, built, f"(select * from {edges} where is_used)", registry, stamped=True)
    return True


def model(dbt, session):
    # the post-hook (dbt_project.yml) applies PENDING in the transaction that writes the rows
    dbt.config(materialized="incremental", incremental_strategy="delete+insert", unique_key="node",
               on_schema_change="fail")
    dbt.ref("int_identity_nodes").create_view("_identity_nodes_in", replace=True)
    dbt.ref("int_identity_edges").filter("is_used").create_view("_identity_edges_in", replace=True)
    sources = {"edges": "_identity_edges_all", "tracking": "_identity_tracking", "purchases": "_identity_purchases"}
    dbt.ref("int_identity_edges").create_view(sources["edges"], replace=True)
    dbt.ref("stg_tracking__events").create_view(sources["tracking"], replace=True)
    dbt.ref("int_purchases").create_view(sources["purchases"], replace=True)
    create_state(session)
    if dbt.is_incremental:
        since = session.execute(f"select cast(max(built_at) as varchar) from {dbt.this}").fetchall()[0][0]
        if not changed_region_since(session, str(dbt.this), sources, since):
            changed_region(session, str(dbt.this), "_identity_nodes_in", "_identity_edges_in")
        stitch(session, "_stitch_region_nodes", "_stitch_region_edges", registry=REGISTRY)
    else:
        session.execute(f"delete from {PENDING}").fetchall()
        session.execute(f"insert into {PENDING} values ('reset', null, null)").fetchall()
        stitch(session, "_identity_nodes_in", "_identity_edges_in", registry=REGISTRY)
    # the build writes the registry as it goes (a failed build after this point leaves ids that the next one keeps)
    remember_ids(session)
    # built_at: the build's stamp, written by the post-hook (apply_stitch_pending) on the rows this build wrote
    return session.sql("""
        select c.node, c.node_type, c.node_value, ids.customer_id, c.component_size,
               cast(null as timestamp) as built_at
        from _stitch_components c join _stitch_ids ids using (label)
    """)
