-- One row per distinct identity edge (a pair of identifiers seen together), with whether the stitch
-- uses it and, if not, why: this is also the audit of every merge that was refused.
-- Nodes are "<type>:<value>" with type browser, email (trimmed, lowercased), phone (E.164),
-- user (site user id), stripe_customer and purchase.
with tracking as (
    select * from {{ ref('stg_tracking__events') }}
    where reveals_identity or user_id is not null
),

-- when a browser's claim reached our services (its own clock is a claim too; lines that did not come through
-- the collector keep their time); a message under a server write key is verified, as Stripe's objects are
tracking_claims as (
    select *, coalesce(received_at, event_at) as claimed_at from tracking
),

purchases as (
    select * from {{ ref('int_purchases') }}
),

customers as (
    select * from {{ ref('stg_stripe__customers') }}
),

sessions as (
    select * from {{ ref('stg_stripe__checkout_sessions') }}
),

invoices as (
    select * from {{ ref('stg_stripe__invoices') }}
),

charges as (
    select * from {{ ref('stg_stripe__charges') }}
),

raw_edges as (
    select 'tracking_identify' as edge_source, 'browser' as left_type, anonymous_id as left_value,
           'email' as right_type, email_normalised as right_value, event_at as observed_at,
           claimed_at, is_verified as verified from tracking_claims
    union all
    select 'tracking_identify', 'browser', anonymous_id, 'phone', phone_normalised, event_at, claimed_at, is_verified from tracking_claims
    union all
    select 'tracking_identify', 'browser', anonymous_id, 'user', user_id, event_at, claimed_at, is_verified from tracking_claims
    union all
    select 'tracking_identify', 'user', user_id, 'email', email_normalised, event_at, claimed_at, is_verified from tracking_claims
    union all
    select 'tracking_identify', 'user', user_id, 'phone', phone_normalised, event_at, claimed_at, is_verified from tracking_claims
    union all
    select 'stripe_customer', 'stripe_customer', stripe_customer_id, 'email', {{ normalise_email('email') }}, created_at, null, true
    from customers
    union all
    select 'stripe_customer', 'stripe_customer', stripe_customer_id, 'phone', {{ normalise_phone('phone') }}, created_at, null, true
    from customers
    union all
    select 'invoice', 'stripe_customer', stripe_customer_id, 'email', {{ normalise_email('customer_email') }}, created_at, null, true
    from invoices
    union all
    select 'invoice', 'stripe_customer', stripe_customer_id, 'phone', {{ normalise_phone('customer_phone') }}, created_at, null, true
    from invoices
    union all
    -- charges' billing details: on the customer, or linking a guest's email and phone
    select 'charge', 'stripe_customer', stripe_customer_id, 'email', {{ normalise_email('billing_email') }}, created_at, null, true
    from charges
    union all
    select 'charge', 'stripe_customer', stripe_customer_id, 'phone', {{ normalise_phone('billing_phone') }}, created_at, null, true
    from charges
    union all
    select 'charge', 'email', {{ normalise_email('billing_email') }}, 'phone', {{ normalise_phone('billing_phone') }},
           created_at, null, true
    from charges
    where stripe_customer_id is null
    union all
    select 'checkout_session', 'browser', client_reference_id, 'stripe_customer', stripe_customer_id, created_at, null, true
    from sessions
    union all
    select 'checkout_session', 'browser', client_reference_id, 'email', {{ normalise_email('customer_email') }}, created_at, null, true
    from sessions
    union all
    select 'purchase', 'purchase', purchase_id, 'stripe_customer', stripe_customer_id, purchased_at, null, true from purchases
    union all
    select 'purchase', 'purchase', purchase_id, 'email', email_normalised, purchased_at, null, true from purchases
    union all
    select 'purchase', 'purchase', purchase_id, 'phone', phone_normalised, purchased_at, null, true from purchases
    union all
    select 'purchase', 'purchase', purchase_id, 'browser', client_reference_id, purchased_at, null, true from purchases
),

distinct_edges as (
    select
        left_type,
        left_value,
        right_type,
        right_value,
        min(edge_source) as edge_source,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as times_seen,
        min(claimed_at) as first_claimed_at,
        bool_or(verified) as is_verified
    from raw_edges
    where left_value is not null and right_value is not null
      and (right_type <> 'phone' or {{ valid_e164('right_value') }})
      and (left_type <> 'phone' or {{ valid_e164('left_value') }})
    group by left_type, left_value, right_type, right_value
),

-- the node names are made once per distinct edge, not once per sighting
edges as (
    select
        left_type || ':' || left_value as left_node,
        right_type || ':' || right_value as right_node,
        left_type,
        left_value,
        right_type,
        right_value,
        edge_source,
        first_seen_at,
        last_seen_at,
        times_seen,
        first_claimed_at,
        is_verified
    from distinct_edges
),

endpoints as (
    select left_node as node, left_type as node_type, left_value as node_value from edges
    union
    select right_node, right_type, right_value from edges
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
    select * from edges
    where not exists (select 1 from blocked_nodes where blocked_nodes.node = edges.left_node)
      and not exists (select 1 from blocked_nodes where blocked_nodes.node = edges.right_node)
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
    group by {{ end }}_node having count(distinct {{ other }}_value) > {{ var(limit) }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

refused_nodes as (
    select node, min(reason) as reason
    from (select * from blocked_nodes union all select * from capped_nodes) as refused
    group by node
),

final as (
    select
        edges.left_node,
        edges.right_node,
        edges.left_type,
        edges.right_type,
        edges.edge_source,
        edges.first_seen_at,
        edges.last_seen_at,
        edges.times_seen,
        edges.first_claimed_at,
        edges.is_verified,
        (left_refused.node is null and right_refused.node is null) as is_used,
        coalesce(left_refused.reason, right_refused.reason) as unused_reason,
        coalesce(case when left_refused.node is not null then edges.left_node end,
                 case when right_refused.node is not null then edges.right_node end) as refused_node
    from edges
    left join refused_nodes as left_refused on left_refused.node = edges.left_node
    left join refused_nodes as right_refused on right_refused.node = edges.right_node
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
         then built.changed_at else {{ build_stamp() }} end as changed_at
    {%- else %}
    {{ build_stamp() }} as changed_at
    {%- endif %}
from final
{%- if kept %}
left join {{ previous }} as built on built.left_node = final.left_node and built.right_node = final.right_node
{%- endif %}
