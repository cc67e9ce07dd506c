-- One row per distinct identity edge (a pair of identifiers seen together), with whether the stitch
-- uses it and, if not, why: this is also the audit of every merge that was refused.
-- Nodes are "<type>:<value>" with type browser, email (trimmed, lowercased), phone (E.164),
-- user (site user id), stripe_customer and purchase.
--
-- Incremental (delete+insert by pair). An edge's row depends on the sightings of its pair and on the refusal of
-- its two ends (a blocked value, or a degree cap counted over the node's edges). A run takes the identifiers of the
-- source rows written since its last build (`seeds`: every identifier of a new tracking event or of a Stripe object
-- staged again, and both ends of a purchase's edges that differ from those built) and builds again every pair
-- that touches a seed, from all of that pair's sightings (a pair that touches a seed is seen only in source rows
-- that name the seed). A newer state of a Stripe object always names the object's own identifier (its customer
-- id, a Checkout's browser, a guest charge's billing email and phone: fields Stripe does not change), so the
-- pairs of its older state are among those built again; a pair no source sees any more gets a row without
-- `edge_source`, which the post-hook deletes with the row it replaced (and lists in
-- monitoring.identity_edges_gone until the stitch has taken it in). The other end of a pair that came or went
-- (`ring`) has a new degree: its refusal is counted again and its other edges are written again. Every other
-- end keeps its refusal from the table (`left_refused_reason`, `right_refused_reason`). Tracking events are only
-- ever appended; `forget` and a changed project rebuild in full.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['left_node', 'right_node'],
          on_schema_change='fail', post_hook=["{{ ttattribution.record_edges_gone(this) }}",
                                               "delete from {{ this }} where edge_source is null"],
          indexes=[{'columns': ['left_node']}, {'columns': ['right_node']}] if target.type == 'postgres' else []) }}
{#- The source rows, written out where they are read (a CTE read twice is computed whole once: in an incremental
    build each reader takes only a few of its rows). Tracking: when a browser's claim reached our services (its own
    clock is a claim too; lines that did not come through the collector keep their time); a message under a server
    write key is verified, as Stripe's objects are. Stripe objects: their identifiers normalised once per object;
    charges' billing details are on the customer, or link a guest's email and phone. -#}
{%- set stamp = ', built_at' if is_incremental() else '' %}
{%- set rows_of = {
    'tracking_claims': 'select *, coalesce(received_at, event_at) as claimed_at from ' ~ ref('stg_tracking__events')
                       ~ ' where (reveals_identity or user_id is not null)',
    'purchases': 'select * from ' ~ ref('int_purchases'),
    'customers': 'select stripe_customer_id, ' ~ normalise_email('email') ~ ' as email_normalised, '
                 ~ normalise_phone('phone') ~ ' as phone_normalised, created_at' ~ stamp ~ ' from '
                 ~ ref('stg_stripe__customers'),
    'sessions': 'select client_reference_id, stripe_customer_id, ' ~ normalise_email('customer_email')
                ~ ' as email_normalised, created_at' ~ stamp ~ ' from ' ~ ref('stg_stripe__checkout_sessions'),
    'invoices': 'select stripe_customer_id, ' ~ normalise_email('customer_email') ~ ' as email_normalised, '
                ~ normalise_phone('customer_phone') ~ ' as phone_normalised, created_at' ~ stamp ~ ' from '
                ~ ref('stg_stripe__invoices'),
    'charges': 'select stripe_customer_id, ' ~ normalise_email('billing_email') ~ ' as email_normalised, '
               ~ normalise_phone('billing_phone') ~ ' as phone_normalised, created_at' ~ stamp ~ ' from '
               ~ ref('stg_stripe__charges'),
} %}
{#- Every sighting: (source rows, edge_source, left type, left column, right type, right column, when, when claimed,
    verified, condition). Written out below for all source rows (a full build) or for those near the seeds. -#}
{%- set sightings = [
    ('tracking_claims', 'tracking_identify', 'browser', 'anonymous_id', 'email', 'email_normalised', 'event_at', 'claimed_at', 'is_verified', none),
    ('tracking_claims', 'tracking_identify', 'browser', 'anonymous_id', 'phone', 'phone_normalised', 'event_at', 'claimed_at', 'is_verified', none),
    ('tracking_claims', 'tracking_identify', 'browser', 'anonymous_id', 'user', 'user_id', 'event_at', 'claimed_at', 'is_verified', none),
    ('tracking_claims', 'tracking_identify', 'user', 'user_id', 'email', 'email_normalised', 'event_at', 'claimed_at', 'is_verified', none),
    ('tracking_claims', 'tracking_identify', 'user', 'user_id', 'phone', 'phone_normalised', 'event_at', 'claimed_at', 'is_verified', none),
    ('customers', 'stripe_customer', 'stripe_customer', 'stripe_customer_id', 'email', 'email_normalised', 'created_at', 'null', 'true', none),
    ('customers', 'stripe_customer', 'stripe_customer', 'stripe_customer_id', 'phone', 'phone_normalised', 'created_at', 'null', 'true', none),
    ('invoices', 'invoice', 'stripe_customer', 'stripe_customer_id', 'email', 'email_normalised', 'created_at', 'null', 'true', none),
    ('invoices', 'invoice', 'stripe_customer', 'stripe_customer_id', 'phone', 'phone_normalised', 'created_at', 'null', 'true', none),
    ('charges', 'charge', 'stripe_customer', 'stripe_customer_id', 'email', 'email_normalised', 'created_at', 'null', 'true', none),
    ('charges', 'charge', 'stripe_customer', 'stripe_customer_id', 'phone', 'phone_normalised', 'created_at', 'null', 'true', none),
    ('charges', 'charge', 'email', 'email_normalised', 'phone', 'phone_normalised', 'created_at', 'null', 'true', 'stripe_customer_id is null'),
    ('sessions', 'checkout_session', 'browser', 'client_reference_id', 'stripe_customer', 'stripe_customer_id', 'created_at', 'null', 'true', none),
    ('sessions', 'checkout_session', 'browser', 'client_reference_id', 'email', 'email_normalised', 'created_at', 'null', 'true', none),
    ('purchases', 'purchase', 'purchase', 'purchase_id', 'stripe_customer', 'stripe_customer_id', 'purchased_at', 'null', 'true', none),
    ('purchases', 'purchase', 'purchase', 'purchase_id', 'email', 'email_normalised', 'purchased_at', 'null', 'true', none),
    ('purchases', 'purchase', 'purchase', 'purchase_id', 'phone', 'phone_normalised', 'purchased_at', 'null', 'true', none),
    ('purchases', 'purchase', 'purchase', 'purchase_id', 'browser', 'client_reference_id', 'purchased_at', 'null', 'true', none),
] %}
{%- set sources = ['tracking_claims', 'customers', 'invoices', 'charges', 'sessions', 'purchases'] %}
{#- each source's identifiers: (type, column) -#}
{%- set identifiers = {} %}
{%- for source in sources %}
    {%- set found = [] %}
    {%- for s in sightings if s[0] == source %}
        {%- for pair in [(s[2], s[3]), (s[4], s[5])] if pair not in found %}{% do found.append(pair) %}{% endfor %}
    {%- endfor %}
    {%- do identifiers.update({source: found}) %}
{%- endfor %}
{%- set aggregates %}
        min(edge_source) as edge_source,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as times_seen,
        min(claimed_at) as first_claimed_at,
        bool_or(verified) as is_verified
{%- endset %}
{%- set edge_columns = ['left_node', 'right_node', 'left_type', 'left_value', 'right_type', 'right_value',
                        'edge_source', 'first_seen_at', 'last_seen_at', 'times_seen', 'first_claimed_at',
                        'is_verified'] %}

with
{%- if not is_incremental() %}
{%- for source in sources %}
{{ source }} as (
    {{ rows_of[source] }}
),
{%- endfor %}

sightings as (
    {{ identity_sightings(sightings) }}
),

-- the node names are made once per distinct edge, not once per sighting
work_edges as (
    select left_type || ':' || left_value as left_node, right_type || ':' || right_value as right_node,
           left_type, left_value, right_type, right_value, {{ aggregates }}
    from sightings
    group by left_type, left_value, right_type, right_value
),

{%- else %}
{%- set since = stamps_since() %}
all_purchases as (
    {{ rows_of['purchases'] }}
),

-- a purchase's edges are its own (no other source names a purchase): those that differ from the ones built
purchase_sightings as (
    {{ identity_sightings(sightings, prefix='all_', only='purchases') }}
),

purchase_changes as (
    select coalesce(sighted.left_type, built.left_type) as left_type,
           coalesce(sighted.left_node, built.left_node) as left_node,
           coalesce(sighted.right_type, built.right_type) as right_type,
           coalesce(sighted.right_node, built.right_node) as right_node
    from purchase_sightings as sighted
    full outer join (select * from {{ this }} where left_type = 'purchase') as built
        on built.left_node = sighted.left_node and built.right_node = sighted.right_node
    where built.left_node is null or sighted.left_node is null
       or built.first_seen_at is distinct from sighted.observed_at
),

seeds as {{ materialized_cte() }} (
    {%- for source in sources if source != 'purchases' %}
    {%- for type, column in identifiers[source] %}
    select '{{ type }}' as node_type, {{ column }} as node_value from ({{ rows_of[source] }}) as {{ source }}
    where built_at > {{ since }} and {{ column }} is not null
    union
    {%- endfor %}
    {%- endfor %}
    select left_type, substr(left_node, length(left_type) + 2) from purchase_changes
    union
    select right_type, substr(right_node, length(right_type) + 2) from purchase_changes
),

seed_nodes as {{ materialized_cte() }} (
    select node_type || ':' || node_value as node from seeds
),

-- the source rows that name a seed, and their sightings that touch one: every sighting of those pairs. (Joins, not
-- `in (...) or in (...)`: PostgreSQL checks a subquery under an OR row by row, reading the whole subquery for each
-- row once it expects more of it than fits in work_mem; seeds and seed_nodes are distinct.)
{%- for source in sources %}
near_{{ source }} as (
    select {{ source }}.* from ({{ rows_of[source] }}) as {{ source }}
    {%- for type, column in identifiers[source] %}
    left join seeds as seed_{{ loop.index }}
        on seed_{{ loop.index }}.node_type = '{{ type }}' and seed_{{ loop.index }}.node_value = {{ source }}.{{ column }}
    {%- endfor %}
    where {% for type, column in identifiers[source] -%}
        seed_{{ loop.index }}.node_value is not null{% if not loop.last %} or {% endif %}
    {%- endfor %}
),
{%- endfor %}

near_edges as {{ materialized_cte() }} (
    select left_node, right_node, min(left_type) as left_type, min(left_value) as left_value,
           min(right_type) as right_type, min(right_value) as right_value, {{ aggregates }}
    from ({{ identity_sightings(sightings, prefix='near_') }}) as sighted
    left join seed_nodes as left_seed on left_seed.node = sighted.left_node
    left join seed_nodes as right_seed on right_seed.node = sighted.right_node
    where left_seed.node is not null or right_seed.node is not null
    group by left_node, right_node
),

built_near as (
    select built.left_node, built.right_node from {{ this }} as built
    left join seed_nodes as left_seed on left_seed.node = built.left_node
    left join seed_nodes as right_seed on right_seed.node = built.right_node
    where left_seed.node is not null or right_seed.node is not null
),

-- pairs that came or went: their ends' degrees changed
came_or_went as (
    select left_node, right_node from near_edges
    where not exists (select 1 from built_near
                      where built_near.left_node = near_edges.left_node and built_near.right_node = near_edges.right_node)
    union all
    select left_node, right_node from built_near
    where not exists (select 1 from near_edges
                      where near_edges.left_node = built_near.left_node and near_edges.right_node = built_near.right_node)
),

ring as (
    select node from (select left_node as node from came_or_went union select right_node from came_or_went) as ends
    where not exists (select 1 from seed_nodes where seed_nodes.node = ends.node)
),

work_edges as (
    select {{ edge_columns | join(', ') }} from near_edges
    union all
    select left_node, right_node, left_type, substr(left_node, length(left_type) + 2), right_type,
           substr(right_node, length(right_type) + 2), edge_source, first_seen_at, last_seen_at, times_seen,
           first_claimed_at, is_verified
    from {{ this }} as built
    left join ring as left_ring on left_ring.node = built.left_node
    left join ring as right_ring on right_ring.node = built.right_node
    left join seed_nodes as left_seed on left_seed.node = built.left_node
    left join seed_nodes as right_seed on right_seed.node = built.right_node
    where (left_ring.node is not null or right_ring.node is not null)
      and left_seed.node is null and right_seed.node is null
),

-- the nodes whose refusal is decided again (every edge of theirs is in work_edges)
decided_nodes as (
    select node from seed_nodes
    union
    select node from ring
),
{% endif %}

endpoints as (
    select left_node as node, left_type as node_type, left_value as node_value from work_edges
    union
    select right_node, right_type, right_value from work_edges
),

{%- set blocked = seed_rows('blocked_identifiers', ['identifier_type', 'pattern', 'why']) %}
blocked_nodes as (
    {%- if blocked is not none %}
    -- the seed's patterns written in as constants (see the macro seed_rows)
    {%- for row in blocked %}
    select node, {{ literal('blocked_value: ' ~ row[2]) }} as reason from endpoints
    where node_type = {{ literal(row[0]) }} and {{ regex_matches('node_value', literal(row[1])) }}
    union
    {%- endfor %}
    select cast(null as varchar), cast(null as varchar) where false
    {%- else %}
    select distinct endpoints.node, 'blocked_value: ' || blocked.why as reason
    from endpoints
    join {{ ref('blocked_identifiers') }} as blocked
        on blocked.identifier_type = endpoints.node_type
       and {{ regex_matches('endpoints.node_value', 'blocked.pattern') }}
    {%- endif %}
),

usable_edges as (
    select * from work_edges
    where not exists (select 1 from blocked_nodes where blocked_nodes.node = work_edges.left_node)
      and not exists (select 1 from blocked_nodes where blocked_nodes.node = work_edges.right_node)
),

-- super-node guards: degree caps per identifier type, counted over unblocked edges only. Each cap: the node that
-- is refused (left or right end), the edge type it counts, the reason's words, and the dbt var with the limit.
-- Browsers, user ids and browser counts are claims anyone with the public write key can make up.
{%- set caps = [
    ('left', 'browser', 'email', 'shared_browser', 'emails', 'max_emails_per_browser'),
    ('left', 'browser', 'phone', 'shared_browser', 'phones', 'max_phones_per_browser'),
    ('left', 'user', 'email', 'shared_user_id', 'emails', 'max_emails_per_user_id'),
    ('left', 'user', 'phone', 'shared_user_id', 'phones', 'max_phones_per_user_id'),
    ('right', 'browser', 'email', 'sprayed_email', 'browsers', 'max_browsers_per_email'),
    ('right', 'stripe_customer', 'email', 'shared_email', 'stripe customers', 'max_customers_per_email'),
] %}
capped_nodes as (
    {%- for end, left_type, right_type, label, counted, limit in caps %}
    {%- set other = 'right' if end == 'left' else 'left' %}
    select {{ end }}_node as node,
           '{{ label }}: ' || count(distinct {{ other }}_value) || ' {{ counted }}' as reason
    from usable_edges where left_type = '{{ left_type }}' and right_type = '{{ right_type }}'
    {%- if is_incremental() %}
      and {{ end }}_node in (select node from decided_nodes)
    {%- endif %}
    group by {{ end }}_node having count(distinct {{ other }}_value) > {{ var(limit) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

refused_nodes as (
    select node, min(reason) as reason
    from (
        select * from blocked_nodes
        {%- if is_incremental() %} where node in (select node from decided_nodes){% endif %}
        union all
        select * from capped_nodes
        {%- if is_incremental() %}
        union all
        -- an end not decided again keeps its refusal
        select built.left_node, built.left_refused_reason from {{ this }} as built
        where built.left_refused_reason is not null
          and exists (select 1 from endpoints where endpoints.node = built.left_node)
          and not exists (select 1 from decided_nodes where decided_nodes.node = built.left_node)
        union all
        select built.right_node, built.right_refused_reason from {{ this }} as built
        where built.right_refused_reason is not null
          and exists (select 1 from endpoints where endpoints.node = built.right_node)
          and not exists (select 1 from decided_nodes where decided_nodes.node = built.right_node)
        {%- endif %}
    ) as refused
    group by node
),

final as (
    select
        work_edges.left_node,
        work_edges.right_node,
        work_edges.left_type,
        work_edges.right_type,
        work_edges.edge_source,
        work_edges.first_seen_at,
        work_edges.last_seen_at,
        work_edges.times_seen,
        work_edges.first_claimed_at,
        work_edges.is_verified,
        (left_refused.node is null and right_refused.node is null) as is_used,
        coalesce(left_refused.reason, right_refused.reason) as unused_reason,
        coalesce(case when left_refused.node is not null then work_edges.left_node end,
                 case when right_refused.node is not null then work_edges.right_node end) as refused_node,
        left_refused.reason as left_refused_reason,
        right_refused.reason as right_refused_reason
    from work_edges
    left join refused_nodes as left_refused on left_refused.node = work_edges.left_node
    left join refused_nodes as right_refused on right_refused.node = work_edges.right_node
    {%- if is_incremental() %}
    union all
    -- pairs no source sees any more (deleted by the post-hook)
    select built_near.left_node, built_near.right_node, null, null, null, null, null, null, null, null, null, null,
           null, null, null
    from built_near
    where not exists (select 1 from near_edges
                      where near_edges.left_node = built_near.left_node and near_edges.right_node = built_near.right_node)
    {%- endif %}
)

-- changed_at: when the edge last changed (new, or any column different), kept from the table this build replaces;
-- the models downstream tell whose edges changed since their own last build by it, without comparing every edge.
-- An edge that is gone leaves no row: where it was used, the stitch restitches its ends (and stamps them).
{%- set previous = adapter.get_relation(this.database, this.schema, this.identifier) if execute and this is not none else none %}
{%- set kept = previous is not none
        and 'changed_at' in (adapter.get_columns_in_relation(previous) | map(attribute='name') | list) %}
{%- set compared = ['left_type', 'right_type', 'edge_source', 'first_seen_at', 'last_seen_at', 'times_seen',
                    'first_claimed_at', 'is_verified', 'is_used', 'unused_reason', 'refused_node'] %}
select
    final.*,
    {%- if kept %}
    case when built.left_node is not null
              {%- for column in compared %}
              and built.{{ column }} is not distinct from final.{{ column }}
              {%- endfor %}
         then built.changed_at else {{ build_stamp() }} end as changed_at,
    {%- else %}
    {{ build_stamp() }} as changed_at,
    {%- endif %}
    {{ build_stamp() }} as built_at
from final
{%- if kept %}
left join {{ previous }} as built on built.left_node = final.left_node and built.right_node = final.right_node
{%- endif %}
