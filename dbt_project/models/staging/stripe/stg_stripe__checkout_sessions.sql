-- One row per Checkout Session: its latest state by event time.
-- Incremental: only objects with a new state are staged again (macro stripe_object_states).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='checkout_session_id',
          on_schema_change='fail') }}
{#- every field below, read from one parse of the payload, not one parse per field -#}
{%- set paths = ['customer', 'customer_details.email', 'customer_email', 'customer_details.phone', 'customer_details.name', 'customer_details.address.city', 'customer_details.address.state', 'customer_details.address.country', 'customer_details.address.postal_code', 'client_reference_id', 'mode', 'status', 'payment_status', 'invoice', 'subscription', 'payment_intent', 'amount_total', 'created'] -%}
{%- set at = json_text_refs(paths) -%}
with latest as {{ materialized_cte() }} (
    {{ stripe_object_states('checkout.session', paths) }}
),

final as (
    select
        object_id as checkout_session_id,
        {{ at['customer'] }} as stripe_customer_id,
        coalesce({{ at['customer_details.email'] }},
                 {{ at['customer_email'] }}) as customer_email,
        {{ at['customer_details.phone'] }} as customer_phone,
        {{ at['customer_details.name'] }} as customer_name,
        {{ at['customer_details.address.city'] }} as customer_city,
        {{ at['customer_details.address.state'] }} as customer_state,
        {{ at['customer_details.address.country'] }} as customer_country,
        {{ at['customer_details.address.postal_code'] }} as customer_postal_code,
        -- where a site puts the browser id: the strongest browser -> purchase link
        nullif({{ at['client_reference_id'] }}, '') as client_reference_id,
        {{ at['mode'] }} as mode,
        {{ at['status'] }} as status,
        {{ at['payment_status'] }} as payment_status,
        {{ at['invoice'] }} as invoice_id,
        {{ at['subscription'] }} as subscription_id,
        {{ at['payment_intent'] }} as payment_intent_id,
        currency,
        {{ safe_cast(at['amount_total'], 'bigint') }} as amount_total_minor,
        {{ to_major_units(at['amount_total'], 'currency_exponent') }} as amount_total,
        {{ epoch_to_timestamp(at['created']) }} as created_at,
        -- the session object has no completion time: the completed event's time is it
        case when event_type = 'checkout.session.completed' then latest.created_at end as completed_at,
        api_version,
        event_id as last_event_id,
        latest.created_at as last_event_at,
        latest.loaded_at
    from latest
)

select *, {{ build_stamp() }} as built_at from final
