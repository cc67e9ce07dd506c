-- The identity stitch on PostgreSQL, which runs no dbt Python models: the same components, anchors and kept ids as
-- ../int_identity_components.py (whose docstring says how ids are given and kept, and what an incremental run
-- stitches again), computed in SQL by the pre-hook (macros/identity/postgres_stitch.sql) into temporary tables of
-- this model's session, and selected here.
{{ config(
    enabled=target.type == 'postgres',
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='node',
    on_schema_change='fail',
    pre_hook=["{{ ttattribution.postgres_stitch(ref('int_identity_nodes'), ref('int_identity_edges'),
                                                this if is_incremental() else none,
                                                ref('stg_tracking__events'), ref('int_purchases')) }}"],
    post_hook=["{{ ttattribution.apply_stitch_pending(this, ref('int_identity_edges')) }}"],
) }}
select c.node, c.node_type, c.node_value, ids.customer_id, c.component_size, {{ build_stamp() }} as built_at
from _stitch_components as c
join _stitch_ids as ids using (label)
