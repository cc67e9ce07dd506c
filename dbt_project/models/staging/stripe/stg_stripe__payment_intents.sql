-- One row per PaymentIntent: its latest state by event time.
{% set o = 'data.object.' %}
with latest as (
    select * from {{ ref('stg_stripe__object_states') }}
    where object_type = 'payment_intent'
),

final as (
    select
        object_id as payment_intent_id,
        {{ json_text('payload', o ~ 'customer') }} as stripe_customer_id,
        {{ json_text('payload', o ~ 'receipt_email') }} as receipt_email,
        {{ json_text('payload', o ~ 'status') }} as status,
        {{ json_text('payload', o ~ 'latest_charge') }} as latest_charge_id,
        -- only pre-basil shapes say which invoice a PaymentIntent paid
        {{ json_text('payload', o ~ 'invoice') }} as invoice_id,
        {{ json_text('payload', o ~ 'description') }} as description,
        currency,
        cast({{ json_text('payload', o ~ 'amount_received') }} as bigint) as amount_received_minor,
        {{ to_major_units(json_text('payload', o ~ 'amount_received'), 'currency_exponent') }} as amount_received,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'created')) }} as created_at,
        case when event_type = 'payment_intent.succeeded' then latest.created_at end as succeeded_at,
        api_version,
        event_id as last_event_id,
        latest.created_at as last_event_at
    from latest
)

select * from final
