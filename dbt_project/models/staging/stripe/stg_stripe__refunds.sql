-- One row per refund (re_...). Two sources, both read: refund objects of their own events (refund.created,
-- refund.updated, charge.refund.updated) and the refunds listed inside a charge's latest state (charge.refunded
-- webhooks of older API versions, and backfilled charges, which are listed with expand[]=data.refunds).
-- A refund's own latest state wins over its copy inside a charge. Amounts in major units by the currency's
-- exponent. Purchases net refunds through the charge's amount_refunded (stg_stripe__charges); this model is
-- the per-refund detail (when, why, status).
{% set o = 'data.object.' %}
with refund_objects as (
    select
        object_id as refund_id,
        {{ json_text('payload', o ~ 'charge') }} as charge_id,
        {{ json_text('payload', o ~ 'payment_intent') }} as payment_intent_id,
        {{ json_text('payload', o ~ 'status') }} as status,
        {{ json_text('payload', o ~ 'reason') }} as reason,
        currency,
        {{ safe_cast(json_text('payload', o ~ 'amount'), 'bigint') }} as amount_minor,
        {{ to_major_units(json_text('payload', o ~ 'amount'), 'currency_exponent') }} as amount,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'created')) }} as created_at,
        'refund_event' as found_in,
        created_at as state_at
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'refund'
),

charge_refund_items as (
    select
        object_id as charge_id,
        {{ json_text('payload', o ~ 'payment_intent') }} as charge_payment_intent_id,
        currency,
        currency_exponent,
        created_at as state_at,
        {{ json_array_elements('payload', o ~ 'refunds.data') }} as item
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'charge'
),

charge_refunds as (
    select
        {{ json_text('item', 'id') }} as refund_id,
        charge_id,
        coalesce({{ json_text('item', 'payment_intent') }}, charge_payment_intent_id) as payment_intent_id,
        {{ json_text('item', 'status') }} as status,
        {{ json_text('item', 'reason') }} as reason,
        currency,
        {{ safe_cast(json_text('item', 'amount'), 'bigint') }} as amount_minor,
        {{ to_major_units(json_text('item', 'amount'), 'currency_exponent') }} as amount,
        {{ epoch_to_timestamp(json_text('item', 'created')) }} as created_at,
        'charge' as found_in,
        state_at
    from charge_refund_items
),

unioned as (
    select * from refund_objects
    union all
    select * from charge_refunds where refund_id is not null
),

ranked as (
    select
        refund_id, charge_id, payment_intent_id, status, reason, currency, amount_minor, amount, created_at,
        found_in,
        row_number() over (
            partition by refund_id
            order by case when found_in = 'refund_event' then 0 else 1 end, state_at desc
        ) as recency
    from unioned
),

final as (
    select
        refund_id, charge_id, payment_intent_id, status, reason, currency, amount_minor, amount, created_at,
        found_in
    from ranked
    where recency = 1
)

select * from final
