-- One row per identifier the stitch knows: every edge endpoint, every tracked browser and every purchase
-- (so a browser that never identified is still a customer of its own in the journeys).
-- A view: int_identity_components, its only reader, reads it once, and keeps one row per node with the node's
-- customer, so the tests there (node unique and not null) check this too. As a table it was written in full on
-- every build, and its own tests held up the stitch, on the build's longest chain.
{{ config(materialized='view') }}
with edge_nodes as (
    select left_node as node, left_type as node_type from {{ ref('int_identity_edges') }}
    union
    select right_node, right_type from {{ ref('int_identity_edges') }}
),

browsers as (
    select distinct 'browser:' || anonymous_id as node, 'browser' as node_type
    from {{ ref('stg_tracking__events') }}
    where anonymous_id is not null
),

purchases as (
    select 'purchase:' || purchase_id as node, 'purchase' as node_type from {{ ref('int_purchases') }}
),

final as (
    select node, node_type from edge_nodes
    union
    select node, node_type from browsers
    union
    select node, node_type from purchases
)

select * from final
