-- One row per Stripe customer: its latest state by event time.
{% set o = 'data.object.' %}
with latest as (
    select * from {{ ref('stg_stripe__object_states') }}
    where object_type = 'customer'
),

final as (
    select
        object_id as stripe_customer_id,
        {{ json_text('payload', o ~ 'email') }} as email,
        {{ json_text('payload', o ~ 'phone') }} as phone,
        {{ json_text('payload', o ~ 'name') }} as name,
        {{ json_text('payload', o ~ 'address.country') }} as country,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'created')) }} as created_at,
        (event_type = 'customer.deleted') as is_deleted,
        event_id as last_event_id,
        latest.created_at as last_event_at
    from latest
)

select * from final
