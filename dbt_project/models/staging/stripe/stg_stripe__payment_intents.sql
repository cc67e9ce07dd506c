-- One row per PaymentIntent: its latest state by event time.
{% set o = 'data.object.' %}
with latest as (
    select * from {{ ref('stg_stripe__object_states') }}
    where object_type = 'payment_intent'
),

exponents as (
    select currency, exponent from {{ ref('currency_exponents') }}
),

final as (
    select
        latest.object_id as payment_intent_id,
        {{ json_text('payload', o ~ 'customer') }} as stripe_customer_id,
        {{ json_text('payload', o ~ 'receipt_email') }} as receipt_email,
        {{ json_text('payload', o ~ 'status') }} as status,
        {{ json_text('payload', o ~ 'latest_charge') }} as latest_charge_id,
        -- only pre-basil shapes say which invoice a PaymentIntent paid
        {{ json_text('payload', o ~ 'invoice') }} as invoice_id,
        {{ json_text('payload', o ~ 'description') }} as description,
        upper({{ json_text('payload', o ~ 'currency') }}) as currency,
        cast({{ json_text('payload', o ~ 'amount_received') }} as bigint) as amount_received_minor,
        {{ to_major_units(json_text('payload', o ~ 'amount_received'), 'exponents.exponent') }} as amount_received,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'created')) }} as created_at,
        case when latest.event_type = 'payment_intent.succeeded' then latest.created_at end as succeeded_at,
        latest.api_version,
        latest.event_id as last_event_id,
        latest.created_at as last_event_at
    from latest
    left join exponents on exponents.currency = upper({{ json_text('payload', o ~ 'currency') }})
)

select * from final
