-- One row per PaymentIntent: its latest state by event time.
-- Incremental: only objects with a new state are staged again (macro stripe_object_states).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='payment_intent_id',
          on_schema_change='fail') }}
{#- every field below, read from one parse of the payload, not one parse per field -#}
{%- set paths = ['customer', 'receipt_email', 'status', 'latest_charge', 'invoice', 'description', 'amount_received', 'created'] -%}
{%- set at = json_text_refs(paths) -%}
with latest as {{ materialized_cte() }} (
    {{ stripe_object_states('payment_intent', paths) }}
),

final as (
    select
        object_id as payment_intent_id,
        {{ at['customer'] }} as stripe_customer_id,
        {{ at['receipt_email'] }} as receipt_email,
        {{ at['status'] }} as status,
        {{ at['latest_charge'] }} as latest_charge_id,
        -- only pre-basil shapes say which invoice a PaymentIntent paid
        {{ at['invoice'] }} as invoice_id,
        {{ at['description'] }} as description,
        currency,
        {{ safe_cast(at['amount_received'], 'bigint') }} as amount_received_minor,
        {{ to_major_units(at['amount_received'], 'currency_exponent') }} as amount_received,
        {{ epoch_to_timestamp(at['created']) }} as created_at,
        case when event_type = 'payment_intent.succeeded' then latest.created_at end as succeeded_at,
        api_version,
        event_id as last_event_id,
        latest.created_at as last_event_at,
        latest.loaded_at
    from latest
)

select *, {{ build_stamp() }} as built_at from final
