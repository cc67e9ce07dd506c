-- One row per charge: its latest state by event time (charge.refunded carries the refunded total). Only
-- pre-basil shapes name the invoice a charge paid (invoice_id); since basil, stg_stripe__invoice_payments does.
-- Incremental: only objects with a new state are staged again (macro stripe_object_states).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='charge_id',
          on_schema_change='fail') }}
{#- every field below, read from one parse of the payload, not one parse per field -#}
{%- set paths = ['customer', 'payment_intent', 'invoice', 'billing_details.email', 'billing_details.phone', 'billing_details.name', 'billing_details.address.city', 'billing_details.address.state', 'billing_details.address.country', 'billing_details.address.postal_code', 'status', 'amount', 'amount_refunded', 'created'] -%}
{%- set at = json_text_refs(paths) -%}
with latest as {{ materialized_cte() }} (
    {{ stripe_object_states('charge', paths) }}
),

final as (
    select
        object_id as charge_id,
        {{ at['customer'] }} as stripe_customer_id,
        {{ at['payment_intent'] }} as payment_intent_id,
        {{ at['invoice'] }} as invoice_id,
        {{ at['billing_details.email'] }} as billing_email,
        {{ at['billing_details.phone'] }} as billing_phone,
        {{ at['billing_details.name'] }} as billing_name,
        {{ at['billing_details.address.city'] }} as billing_city,
        {{ at['billing_details.address.state'] }} as billing_state,
        {{ at['billing_details.address.country'] }} as billing_country,
        {{ at['billing_details.address.postal_code'] }} as billing_postal_code,
        {{ at['status'] }} as status,
        currency,
        {{ safe_cast(at['amount'], 'bigint') }} as amount_minor,
        {{ safe_cast(at['amount_refunded'], 'bigint') }} as amount_refunded_minor,
        {{ to_major_units(at['amount'], 'currency_exponent') }} as amount,
        {{ to_major_units(at['amount_refunded'], 'currency_exponent') }} as amount_refunded,
        {{ epoch_to_timestamp(at['created']) }} as created_at,
        api_version,
        event_id as last_event_id,
        latest.created_at as last_event_at,
        latest.loaded_at
    from latest
)

select *, {{ build_stamp() }} as built_at from final
