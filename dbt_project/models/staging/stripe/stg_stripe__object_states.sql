-- One row per Stripe object (invoice, charge, ...): the event that carries its latest state, with the
-- currency exponent that every amount of the object is converted by.
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

exponents as (
    select currency, exponent from {{ ref('currency_exponents') }}
),

final as (
    select
        ranked.event_id,
        ranked.event_type,
        ranked.api_version,
        ranked.is_pre_basil_shape,
        ranked.created_at,
        ranked.object_id,
        ranked.object_type,
        upper({{ json_text('ranked.payload', 'data.object.currency') }}) as currency,
        -- minor units per major unit of the object's currency: 0 for JPY, 3 for KWD, 2 when not listed
        coalesce(exponents.exponent, 2) as currency_exponent,
        ranked.payload
    from ranked
    left join exponents on exponents.currency = upper({{ json_text('ranked.payload', 'data.object.currency') }})
    where ranked.state_rank = 1
)

select * from final
