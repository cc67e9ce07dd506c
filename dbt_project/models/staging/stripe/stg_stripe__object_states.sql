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
    -- the keys only: the state is chosen without carrying the payloads through the window
    select event_id, object_type, object_id, created_at
    from {{ ref('stg_stripe__events') }} as events
    where object_id is not null and object_type is not null
    {% if is_incremental() %}
      and exists (
          select 1 from {{ source('stripe', 'stripe_events') }} as new_events
          where {{ unstaged_loads(source('stripe', 'stripe_events')) }}
            and new_events.object_type = events.object_type and new_events.object_id = events.object_id)
    {% endif %}
),

latest as (
    select event_id
    from (
        select
            event_id,
            row_number() over (partition by object_type, object_id order by created_at desc, event_id desc)
                as state_rank
        from events
    ) as ranked
    where state_rank = 1
),

states as (
    -- the chosen events, payload and all (event ids are unique: a source test)
    select
        events.*,
        upper({{ json_text('events.payload', 'data.object.currency') }}) as currency
    from {{ ref('stg_stripe__events') }} as events
    where events.event_id in (select event_id from latest)
),

exponents as (
    select currency, exponent from {{ ref('currency_exponents') }}
),

final as (
    select
        states.event_id,
        states.event_type,
        states.api_version,
        states.is_pre_basil_shape,
        states.created_at,
        states.loaded_at,
        states.object_id,
        states.object_type,
        states.currency,
        -- minor units per major unit of the object's currency: 0 for JPY, 3 for KWD, 2 when not listed
        coalesce(exponents.exponent, 2) as currency_exponent,
        states.payload
    from states
    left join exponents on exponents.currency = states.currency
)

select * from final
