-- The identity stitch on PostgreSQL, which runs no dbt Python models: the same components, anchors and kept ids as
-- ../int_identity_components.py (whose docstring says how ids are given and kept), computed in SQL by the pre-hook
-- (macros/identity/postgres_stitch.sql) into temporary tables of this model's session, and selected here.
{{ config(
    enabled=target.type == 'postgres',
    materialized='table',
    pre_hook=["{{ ttattribution.postgres_stitch(ref('int_identity_nodes'), ref('int_identity_edges')) }}"],
) }}
select c.node, c.node_type, c.node_value, ids.customer_id, c.component_size
from _stitch_components as c
join _stitch_ids as ids using (label)
