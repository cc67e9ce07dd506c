-- One row per invoice: its latest state by event time (webhooks arrive out of order).
{% set o = 'data.object.' %}
with latest as (
    select * from {{ ref('stg_stripe__object_states') }}
    where object_type = 'invoice'
),

final as (
    select
        object_id as invoice_id,
        {{ json_text('payload', o ~ 'customer') }} as stripe_customer_id,
        {{ json_text('payload', o ~ 'customer_email') }} as customer_email,
        {{ json_text('payload', o ~ 'customer_phone') }} as customer_phone,
        {{ json_text('payload', o ~ 'customer_name') }} as customer_name,
        {{ json_text('payload', o ~ 'status') }} as status,
        {{ json_text('payload', o ~ 'billing_reason') }} as billing_reason,
        -- basil: parent.subscription_details.subscription; before: top-level subscription
        coalesce({{ json_text('payload', o ~ 'parent.subscription_details.subscription') }},
                 {{ json_text('payload', o ~ 'subscription') }}) as subscription_id,
        -- basil: payments.data[].payment.payment_intent; before: top-level payment_intent
        coalesce({{ json_text('payload', o ~ 'payments.data[0].payment.payment_intent') }},
                 {{ json_text('payload', o ~ 'payment_intent') }}) as payment_intent_id,
        {{ json_text('payload', o ~ 'charge') }} as charge_id,
        currency,
        cast({{ json_text('payload', o ~ 'amount_paid') }} as bigint) as amount_paid_minor,
        {{ to_major_units(json_text('payload', o ~ 'amount_paid'), 'currency_exponent') }} as amount_paid,
        {{ to_major_units(json_text('payload', o ~ 'total'), 'currency_exponent') }} as total,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'created')) }} as created_at,
        coalesce({{ epoch_to_timestamp(json_text('payload', o ~ 'status_transitions.paid_at')) }},
                 case when event_type = 'invoice.paid' then latest.created_at end) as paid_at,
        api_version,
        is_pre_basil_shape,
        event_id as last_event_id,
        latest.created_at as last_event_at
    from latest
)

select * from final
