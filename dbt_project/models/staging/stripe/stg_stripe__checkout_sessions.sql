-- One row per Checkout Session: its latest state by event time.
{% set o = 'data.object.' %}
with latest as (
    select * from {{ ref('stg_stripe__object_states') }}
    where object_type = 'checkout.session'
),

final as (
    select
        object_id as checkout_session_id,
        {{ json_text('payload', o ~ 'customer') }} as stripe_customer_id,
        coalesce({{ json_text('payload', o ~ 'customer_details.email') }},
                 {{ json_text('payload', o ~ 'customer_email') }}) as customer_email,
        {{ json_text('payload', o ~ 'customer_details.phone') }} as customer_phone,
        {{ json_text('payload', o ~ 'customer_details.name') }} as customer_name,
        -- where a site puts the browser id: the strongest browser -> purchase link
        nullif({{ json_text('payload', o ~ 'client_reference_id') }}, '') as client_reference_id,
        {{ json_text('payload', o ~ 'mode') }} as mode,
        {{ json_text('payload', o ~ 'status') }} as status,
        {{ json_text('payload', o ~ 'payment_status') }} as payment_status,
        {{ json_text('payload', o ~ 'invoice') }} as invoice_id,
        {{ json_text('payload', o ~ 'subscription') }} as subscription_id,
        {{ json_text('payload', o ~ 'payment_intent') }} as payment_intent_id,
        currency,
        cast({{ json_text('payload', o ~ 'amount_total') }} as bigint) as amount_total_minor,
        {{ to_major_units(json_text('payload', o ~ 'amount_total'), 'currency_exponent') }} as amount_total,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'created')) }} as created_at,
        -- the session object has no completion time: the completed event's time is it
        case when event_type = 'checkout.session.completed' then latest.created_at end as completed_at,
        api_version,
        event_id as last_event_id,
        latest.created_at as last_event_at
    from latest
)

select * from final
