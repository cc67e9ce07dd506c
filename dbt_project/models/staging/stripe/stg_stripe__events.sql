-- A view: a projection of the raw table, read by two models; a table would copy every payload.
{{ config(materialized='view') }}
-- One row per Stripe event with the fields every entity model needs; the payload stays JSON.
with source as (
    select event_id, event_type, api_version, created_at, object_id, object_type, payload, _loaded_at
    from {{ source('stripe', 'stripe_events') }}
),

final as (
    select
        event_id,
        event_type,
        api_version,
        -- pre-2025-03-31 ("basil") shapes moved fields; staging models read both
        (api_version < '2025-03-31') as is_pre_basil_shape,
        created_at,
        object_id,
        object_type,
        payload,
        _loaded_at as loaded_at
    from source
)

select * from final
