-- One row per charge: its latest state by event time (charge.refunded carries the refunded total).
{% set o = 'data.object.' %}
with latest as (
    select * from {{ ref('stg_stripe__object_states') }}
    where object_type = 'charge'
),

final as (
    select
        object_id as charge_id,
        {{ json_text('payload', o ~ 'customer') }} as stripe_customer_id,
        {{ json_text('payload', o ~ 'payment_intent') }} as payment_intent_id,
        {{ json_text('payload', o ~ 'invoice') }} as invoice_id,
        {{ json_text('payload', o ~ 'billing_details.email') }} as billing_email,
        {{ json_text('payload', o ~ 'billing_details.phone') }} as billing_phone,
        {{ json_text('payload', o ~ 'billing_details.name') }} as billing_name,
        {{ json_text('payload', o ~ 'status') }} as status,
        currency,
        cast({{ json_text('payload', o ~ 'amount') }} as bigint) as amount_minor,
        cast({{ json_text('payload', o ~ 'amount_refunded') }} as bigint) as amount_refunded_minor,
        {{ to_major_units(json_text('payload', o ~ 'amount'), 'currency_exponent') }} as amount,
        {{ to_major_units(json_text('payload', o ~ 'amount_refunded'), 'currency_exponent') }} as amount_refunded,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'created')) }} as created_at,
        api_version,
        event_id as last_event_id,
        latest.created_at as last_event_at
    from latest
)

select * from final
