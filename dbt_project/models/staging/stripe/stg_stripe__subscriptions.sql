-- One row per subscription: its latest state by event time, with when it started and when it was cancelled.
{% set o = 'data.object.' %}
with latest as (
    select * from {{ ref('stg_stripe__object_states') }}
    where object_type = 'subscription'
),

final as (
    select
        object_id as subscription_id,
        {{ json_text('payload', o ~ 'customer') }} as stripe_customer_id,
        {{ json_text('payload', o ~ 'status') }} as status,
        {{ json_text('payload', o ~ 'items.data[0].price.id') }} as price_id,
        {{ json_text('payload', o ~ 'items.data[0].price.product') }} as product_id,
        currency,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'start_date')) }} as started_at,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'canceled_at')) }} as canceled_at,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'ended_at')) }} as ended_at,
        {{ json_text('payload', o ~ 'cancellation_details.reason') }} as cancellation_reason,
        event_id as last_event_id,
        latest.created_at as last_event_at
    from latest
)

select * from final
