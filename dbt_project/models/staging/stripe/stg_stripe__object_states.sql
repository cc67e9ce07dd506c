-- One row per Stripe object (invoice, charge, ...): the event that carries its latest state, with the
-- currency exponent that every amount of the object is converted by.
-- Webhooks arrive out of order and pulls overlap, so "latest" is by the event's own creation time,
-- with the event id as a deterministic tie-break for same-second events.
--
-- Incremental: a run chooses the state again only for the objects that the new loads have events of, among all
-- of each such object's events, and replaces their rows (delete+insert by object), so the table equals a
-- rebuild. An event without an object type names nothing the staging models read and is left out. The
-- orchestration rebuilds the table in full whenever the dbt project changes (the currency seed included).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['object_type', 'object_id'],
          on_schema_change='fail') }}
with events as (
    select * from {{ ref('stg_stripe__events') }} as events
    where object_id is not null and object_type is not null
    {% if is_incremental() %}
      and exists (
          select 1 from {{ source('stripe', 'stripe_events') }} as new_events
          where {{ unstaged_loads(source('stripe', 'stripe_events')) }}
            and new_events.object_type = events.object_type and new_events.object_id = events.object_id)
    {% endif %}
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
        ranked.loaded_at,
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
