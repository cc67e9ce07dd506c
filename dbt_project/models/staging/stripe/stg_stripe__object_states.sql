-- One row per Stripe object (invoice, charge, ...): the event that carries its latest state.
-- Webhooks arrive out of order and pulls overlap, so "latest" is by the event's own creation time,
-- with the event id as a deterministic tie-break for same-second events.
with events as (
    select * from {{ ref('stg_stripe__events') }}
    where object_id is not null
),

ranked as (
    select
        *,
        row_number() over (partition by object_type, object_id order by created_at desc, event_id desc) as state_rank
    from events
),

final as (
    select event_id, event_type, api_version, is_pre_basil_shape, created_at, object_id, object_type, payload
    from ranked
    where state_rank = 1
)

select * from final
