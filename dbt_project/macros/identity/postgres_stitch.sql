{# The stitch of int_identity_components.py in PostgreSQL SQL, run as the model's pre-hook (only when it runs: a
   compile writes nothing). Connected components by min-label propagation over the used edges with pointer
   jumping (a node takes its label's label), so a long chain converges in a number of rounds that grows with the
   logarithm of its length, not with it. Only the nodes whose label changed in a round push it to their neighbours
   in the next (the frontier): the first round joins every edge, the later ones the few that can still move. Then, as on DuckDB: each
   component's anchor (the most stable identifier; ties by the identifier's bytes, hence collate "C"), the ids kept
   from monitoring.customer_ids, and the merges and splits written to monitoring.customer_id_changes. Returns the
   registry writes, which the hook runs in the model's transaction.

   Incremental (``built``: the model's table), as the Python stitch's `changed_region_since` (from the rows written
   since the last build: ``tracking`` and ``purchases`` are the staged events and int_purchases), or after a full
   rebuild of the edges alone `changed_region`: only the components that can
   differ from the last build are stitched again, those holding an identifier that is new or gone or the end of a used
   edge that is new or gone since the edges kept in monitoring.stitched_edges; what changed goes to
   monitoring.stitch_pending, which `apply_stitch_pending` (the model's post-hook) applies with the rows. PostgreSQL
   keeps no statistics of temporary tables unless asked: each is analyzed before it is joined. #}
{% macro postgres_stitch(nodes, edges, built=none, tracking=none, purchases=none) %}
    {%- if not execute -%}{{ return('select 1') }}{%- endif -%}
    {%- set ranks = {'stripe_customer': 0, 'email': 1, 'phone': 2, 'user': 3, 'purchase': 4, 'browser': 5} -%}
    {%- call statement('stitch_graph') -%}
        create schema if not exists monitoring;
        create table if not exists monitoring.customer_ids (
            node text primary key, customer_id text not null, since timestamp not null
        );
        create table if not exists monitoring.customer_id_changes (
            old_customer_id text not null, customer_id text not null, changed_at timestamp not null, why text not null
        );
        create table if not exists monitoring.stitched_edges (left_node text, right_node text);
        create table if not exists monitoring.stitch_pending (change text not null, left_node text, right_node text);
        create table if not exists monitoring.identity_edges_gone (left_node text, right_node text, gone_at timestamp);
        drop table if exists _stitch_nodes, _stitch_pairs, _stitch_labels, _stitch_frontier, _stitch_moved,
            _stitch_components, _stitch_previous, _stitch_kept, _stitch_ids, _stitch_changes, _stitch_used,
            _stitch_all_nodes, _stitch_edge_changes, _stitch_node_changes, _stitch_region_ids, _stitch_region_nodes,
            _stitch_region_edges, _stitch_candidates, _stitch_touched;
        {%- set since = none %}
        {%- if built is not none and tracking is not none %}
        {%- set since = run_query('select cast(max(built_at) as varchar) from ' ~ built).columns[0].values()[0] %}
        {%- if since is not none %}
        {%- set older = run_query('select count(*) from (select 1 from ' ~ edges ~ " where built_at <= cast('"
                                   ~ since ~ "' as timestamp) limit 1) as older").columns[0].values()[0] %}
        {%- if older == 0 %}{% set since = none %}{% endif %}
        {%- endif %}
        {%- endif %}
        {%- if built is none %}
        create temp table _stitch_used as select left_node, right_node from {{ edges }} where is_used;
        delete from monitoring.stitch_pending;
        insert into monitoring.stitch_pending values ('reset', null, null);
        {%- set stitched_nodes, stitched_edges = nodes, '_stitch_used' %}
        {%- elif since is not none %}
        {%- set stamp = "cast('" ~ since ~ "' as timestamp)" %}
        -- what changed, from the rows written since the last build (see changed_region_since in the Python stitch)
        create temp table _stitch_candidates as
        select left_node, right_node from {{ edges }} where built_at > {{ stamp }}
        union
        select left_node, right_node from monitoring.identity_edges_gone;
        analyze _stitch_candidates;
        create temp table _stitch_edge_changes as
        select 'edge_added' as change, e.left_node, e.right_node from {{ edges }} as e
        where e.built_at > {{ stamp }} and e.is_used
          and not exists (select 1 from monitoring.stitched_edges as s
                          where s.left_node = e.left_node and s.right_node = e.right_node)
        union all
        select 'edge_gone', s.left_node, s.right_node from monitoring.stitched_edges as s
        join _stitch_candidates as c on c.left_node = s.left_node and c.right_node = s.right_node
        where not exists (select 1 from {{ edges }} as e
                          where e.is_used and e.left_node = s.left_node and e.right_node = s.right_node);
        create temp table _stitch_touched as
        select left_node as node from _stitch_candidates
        union select right_node from _stitch_candidates
        union select 'browser:' || anonymous_id from {{ tracking }}
              where built_at > {{ stamp }} and anonymous_id is not null
        union select 'purchase:' || purchase_id from {{ purchases }} as p
              where not exists (select 1 from {{ built }} as b where b.node = 'purchase:' || p.purchase_id)
        union select node from {{ built }} as b
              where node_type = 'purchase'
                and not exists (select 1 from {{ purchases }} as p where b.node = 'purchase:' || p.purchase_id);
        analyze _stitch_touched;
        create temp table _stitch_all_nodes as
        select left_node as node, left_type as node_type from {{ edges }}
        where left_node in (select node from _stitch_touched)
        union
        select right_node, right_type from {{ edges }} where right_node in (select node from _stitch_touched)
        union
        select 'browser:' || anonymous_id, 'browser' from {{ tracking }}
        where anonymous_id in (select substr(node, 9) from _stitch_touched where node like 'browser:%')
        union
        select 'purchase:' || purchase_id, 'purchase' from {{ purchases }}
        where purchase_id in (select substr(node, 10) from _stitch_touched where node like 'purchase:%');
        analyze _stitch_all_nodes;
        create temp table _stitch_node_changes as
        select 'node_added' as change, node from _stitch_all_nodes as n
        where not exists (select 1 from {{ built }} as b where b.node = n.node)
        union all
        select 'node_removed', t.node from _stitch_touched as t
        where exists (select 1 from {{ built }} as b where b.node = t.node)
          and not exists (select 1 from _stitch_all_nodes as n where n.node = t.node);
        analyze _stitch_edge_changes;
        analyze _stitch_node_changes;
        {{ ttattribution.postgres_stitch_region_ids(built) }}
        create temp table _stitch_region_nodes as
        select b.node, b.node_type from {{ built }} as b
        where exists (select 1 from _stitch_region_ids as i where i.customer_id = b.customer_id)
          and not exists (select 1 from _stitch_node_changes as c where c.change = 'node_removed' and c.node = b.node)
        union all
        select n.node, n.node_type from _stitch_all_nodes as n
        where n.node in (select node from _stitch_node_changes where change = 'node_added');
        create unique index on _stitch_region_nodes (node);
        analyze _stitch_region_nodes;
        create temp table _stitch_region_edges as
        select e.left_node, e.right_node from {{ edges }} as e
        where e.is_used and exists (select 1 from _stitch_region_nodes as r where r.node = e.left_node);
        {{ ttattribution.postgres_stitch_pending() }}
        {%- set stitched_nodes, stitched_edges = '_stitch_region_nodes', '_stitch_region_edges' %}
        {%- else %}
        create temp table _stitch_used as select left_node, right_node from {{ edges }} where is_used;
        create temp table _stitch_all_nodes as select node, node_type from {{ nodes }};
        create unique index on _stitch_all_nodes (node);
        analyze _stitch_all_nodes;
        analyze _stitch_used;
        create temp table _stitch_edge_changes as
        select 'edge_added' as change, left_node, right_node from (
            select left_node, right_node from _stitch_used
            except select left_node, right_node from monitoring.stitched_edges) as added
        union all
        select 'edge_gone', left_node, right_node from (
            select left_node, right_node from monitoring.stitched_edges
            except select left_node, right_node from _stitch_used) as gone;
        create temp table _stitch_node_changes as
        select 'node_added' as change, node from _stitch_all_nodes as n
        where not exists (select 1 from {{ built }} as b where b.node = n.node)
        union all
        select 'node_removed', node from {{ built }} as b
        where not exists (select 1 from _stitch_all_nodes as n where n.node = b.node);
        analyze _stitch_edge_changes;
        analyze _stitch_node_changes;
        {{ ttattribution.postgres_stitch_region_ids(built) }}
        create temp table _stitch_region_nodes as
        select n.node, n.node_type from _stitch_all_nodes as n
        left join {{ built }} as b using (node)
        where b.node is null or exists (select 1 from _stitch_region_ids as i where i.customer_id = b.customer_id);
        create unique index on _stitch_region_nodes (node);
        analyze _stitch_region_nodes;
        -- both ends of every used edge out of the region are in it (an unchanged edge joins two identifiers of one
        -- built component, a new one two touched identifiers)
        create temp table _stitch_region_edges as
        select e.left_node, e.right_node from _stitch_used as e
        where exists (select 1 from _stitch_region_nodes as r where r.node = e.left_node);
        {{ ttattribution.postgres_stitch_pending() }}
        {%- set stitched_nodes, stitched_edges = '_stitch_region_nodes', '_stitch_region_edges' %}
        {%- endif %}
        create temp table _stitch_nodes as
        select node, node_type, cast(row_number() over () - 1 as integer) as i,
               case node_type {% for t, r in ranks.items() %}when '{{ t }}' then {{ r }} {% endfor %}else 9 end
                   as anchor_rank
        from {{ stitched_nodes }};
        create unique index on _stitch_nodes (node);
        analyze _stitch_nodes;
        create temp table _stitch_pairs as
        with used as (
            select l.i as a, r.i as b
            from {{ stitched_edges }} as e
            join _stitch_nodes as l on l.node = e.left_node
            join _stitch_nodes as r on r.node = e.right_node
            where l.i <> r.i
        )
        select a, b from used union select b, a from used;
        create index on _stitch_pairs (a);
        create temp table _stitch_labels as select i, i as label from _stitch_nodes;
        alter table _stitch_labels add primary key (i);
        create temp table _stitch_frontier as select i from _stitch_nodes;
        create temp table _stitch_moved (i integer not null);
        analyze _stitch_pairs;
        analyze _stitch_labels;
    {%- endcall -%}
    {%- set state = namespace(done=false, rounds=0) -%}
    {%- for round in range(10000) if not state.done -%}
        {%- set state.rounds = state.rounds + 1 -%}
        {%- call statement('stitch_round', fetch_result=true) -%}
            -- each frontier node offers its label to its neighbours; those it lowers, and those that then take
            -- their label's label, are the next frontier
            with offered as (
                select p.b as i, min(n.label) as label
                from _stitch_frontier as f
                join _stitch_labels as n on n.i = f.i
                join _stitch_pairs as p on p.a = f.i
                group by p.b
            ),
            moved as (
                update _stitch_labels as l set label = offered.label
                from offered where offered.i = l.i and offered.label < l.label
                returning l.i
            )
            insert into _stitch_moved select i from moved;
            with jumped as (
                update _stitch_labels as l set label = j.label
                from _stitch_labels as j where j.i = l.label and j.label < l.label
                returning l.i
            )
            insert into _stitch_moved select i from jumped;
            truncate _stitch_frontier;
            insert into _stitch_frontier select distinct i from _stitch_moved;
            truncate _stitch_moved;
            analyze _stitch_frontier;
            select count(*) from _stitch_frontier
        {%- endcall -%}
        {%- set moved = load_result('stitch_round')['data'][0][0] -%}
        {%- if moved == 0 %}{% set state.done = true %}{% endif -%}
    {%- endfor -%}
    {%- if not state.done -%}
        {{ exceptions.raise_compiler_error('the identity stitch did not converge in ' ~ state.rounds ~ ' rounds') }}
    {%- endif -%}
    {%- call statement('stitch_ids') -%}
        create temp table _stitch_components as
        with labelled as (
            select n.node, n.node_type, n.anchor_rank, l.label
            from _stitch_nodes as n join _stitch_labels as l using (i)
        ),
        anchors as (
            select distinct on (label) label, node as anchor
            from labelled order by label, anchor_rank, node collate "C"
        ),
        sizes as (select label, count(*) as component_size from labelled group by label)
        -- a node is '<type>:<value>' and types hold no ':', so the value is everything after the first one
        select labelled.node, labelled.node_type, substr(labelled.node, strpos(labelled.node, ':') + 1) as node_value,
               labelled.label, anchors.anchor, sizes.component_size
        from labelled join anchors using (label) join sizes using (label);
        analyze _stitch_components;

        create temp table _stitch_previous as
        select c.label, min(c.anchor collate "C") as anchor, r.customer_id as old_id, min(r.since) as since,
               count(*) as n
        from _stitch_components as c join monitoring.customer_ids as r using (node)
        group by c.label, r.customer_id;

        -- an id stays with the component holding most of its identifiers (ties: the smaller anchor)
        create temp table _stitch_kept as
        select label, old_id, since from (
            select *, row_number() over (partition by old_id order by n desc, anchor collate "C") as rank
            from _stitch_previous
        ) as ranked where rank = 1;

        create temp table _stitch_ids as
        -- of the ids a component kept, the oldest survives
        with survivors as (
            select distinct on (label) label, old_id as customer_id, since
            from _stitch_kept order by label, since, old_id collate "C"
        ),
        fresh as (
            select distinct label, anchor, 'cust_' || left(md5(anchor), 20) as candidate
            from _stitch_components as c where not exists (select 1 from survivors as s where s.label = c.label)
        ),
        -- (a join, not `candidate in (...)`: past work_mem that subplan scans every id for every new component)
        taken as (select customer_id from monitoring.customer_ids union select customer_id from survivors)
        select label, customer_id, since from survivors
        union all
        -- a new component, or a part that split off: its anchor's id, unless that id is in use already
        select label,
               case when taken.customer_id is not null
                    then 'cust_' || left(md5(anchor || '#' || cast(cast(extract(epoch from clock_timestamp()) * 1000000
                                                                        as bigint) as text)), 20)
                    else candidate end,
               cast(now() at time zone 'UTC' as timestamp)
        from fresh left join taken on taken.customer_id = fresh.candidate;

        create temp table _stitch_changes as
        select kept.old_id as old_customer_id, ids.customer_id, 'merged' as why
        from _stitch_kept as kept join _stitch_ids as ids using (label)
        where kept.old_id <> ids.customer_id
        union all
        select distinct previous.old_id, ids.customer_id, 'split'
        from _stitch_previous as previous
        join _stitch_kept as kept on kept.old_id = previous.old_id and kept.label <> previous.label
        join _stitch_ids as ids on ids.label = previous.label
        where ids.customer_id <> previous.old_id;
    {%- endcall -%}
    {%- set writes -%}
        insert into monitoring.customer_id_changes
        select old_customer_id, customer_id, cast(now() at time zone 'UTC' as timestamp), why from _stitch_changes;
        insert into monitoring.customer_ids
        select c.node, ids.customer_id, ids.since
        from _stitch_components as c join _stitch_ids as ids using (label)
        left join monitoring.customer_ids as r using (node)
        where r.customer_id is distinct from ids.customer_id
        on conflict (node) do update set customer_id = excluded.customer_id, since = excluded.since
    {%- endset -%}
    {{ return(writes) }}
{% endmacro %}

{# What a stitch kept (the edges it stitched, the identifiers gone: monitoring.stitch_pending), applied in the
   transaction that writes its rows (the post-hook of int_identity_components on both warehouses): a build that
   fails leaves the kept edges as they were with the rows they describe. A full build keeps every used edge. The
   rows it wrote get the build's stamp (`built_at`) here: a Python model cannot read dbt's run_started_at, so the
   Python stitch writes them unstamped (PostgreSQL's SQL stitch stamps them itself). #}
{% macro apply_stitch_pending(built, edges) %}
    {%- if target is not defined or target.type != 'postgres' %}
    update {{ built }} set built_at = {{ build_stamp() }} where built_at is null;
    {%- endif %}
    delete from monitoring.stitched_edges where exists (select 1 from monitoring.stitch_pending where change = 'reset');
    insert into monitoring.stitched_edges select left_node, right_node from {{ edges }}
    where is_used and exists (select 1 from monitoring.stitch_pending where change = 'reset');
    delete from monitoring.stitched_edges as kept using monitoring.stitch_pending as p
    where p.change = 'edge_gone' and kept.left_node = p.left_node and kept.right_node = p.right_node;
    insert into monitoring.stitched_edges
    select left_node, right_node from monitoring.stitch_pending where change = 'edge_added';
    delete from {{ built }} where node in (select left_node from monitoring.stitch_pending where change = 'node_removed');
    delete from monitoring.stitch_pending;
    delete from monitoring.identity_edges_gone
{% endmacro %}

{# The region of an incremental stitch on PostgreSQL, from its changes (both ways of finding them). #}
{% macro postgres_stitch_region_ids(built) %}
        -- the components to stitch again: those of every touched identifier, and those whose id a returning
        -- identifier held before (an id stays with the component holding most of its identifiers)
        create temp table _stitch_region_ids as
        with touched as (
            select node from _stitch_node_changes
            union select left_node from _stitch_edge_changes
            union select right_node from _stitch_edge_changes
        )
        select b.customer_id from {{ built }} as b join touched using (node)
        union
        select r.customer_id from monitoring.customer_ids as r
        join _stitch_node_changes as c on c.node = r.node and c.change = 'node_added';
        analyze _stitch_region_ids;
{% endmacro %}

{% macro postgres_stitch_pending() %}
        delete from monitoring.stitch_pending;
        insert into monitoring.stitch_pending
        select change, left_node, right_node from _stitch_edge_changes
        union all
        select change, node, null from _stitch_node_changes where change = 'node_removed';
{% endmacro %}
