-- One row per invoice: its latest state by event time (webhooks arrive out of order).
-- Incremental: only objects with a new state are staged again (macro stripe_object_states).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='invoice_id',
          on_schema_change='fail') }}
{#- every field below, read from one parse of the payload, not one parse per field -#}
{%- set paths = ['customer', 'customer_email', 'customer_phone', 'customer_name', 'status', 'billing_reason', 'customer_address.city', 'customer_address.state', 'customer_address.country', 'customer_address.postal_code', 'parent.subscription_details.subscription', 'subscription', 'payment_intent', 'charge', 'amount_paid', 'total', 'created', 'status_transitions.paid_at'] -%}
{%- set at = json_text_refs(paths) -%}
with latest as {{ materialized_cte() }} (
    {{ stripe_object_states('invoice', paths) }}
),

final as (
    select
        object_id as invoice_id,
        {{ at['customer'] }} as stripe_customer_id,
        {{ at['customer_email'] }} as customer_email,
        {{ at['customer_phone'] }} as customer_phone,
        {{ at['customer_name'] }} as customer_name,
        {{ at['customer_address.city'] }} as customer_city,
        {{ at['customer_address.state'] }} as customer_state,
        {{ at['customer_address.country'] }} as customer_country,
        {{ at['customer_address.postal_code'] }} as customer_postal_code,
        {{ at['status'] }} as status,
        {{ at['billing_reason'] }} as billing_reason,
        -- basil: parent.subscription_details.subscription; before: top-level subscription
        coalesce({{ at['parent.subscription_details.subscription'] }},
                 {{ at['subscription'] }}) as subscription_id,
        -- pre-basil shapes only: since basil the invoice names no payment (stg_stripe__invoice_payments does)
        {{ at['payment_intent'] }} as payment_intent_id,
        {{ at['charge'] }} as charge_id,
        currency,
        {{ safe_cast(at['amount_paid'], 'bigint') }} as amount_paid_minor,
        {{ to_major_units(at['amount_paid'], 'currency_exponent') }} as amount_paid,
        {{ to_major_units(at['total'], 'currency_exponent') }} as total,
        {{ epoch_to_timestamp(at['created']) }} as created_at,
        coalesce({{ epoch_to_timestamp(at['status_transitions.paid_at']) }},
                 case when event_type = 'invoice.paid' then latest.created_at end) as paid_at,
        api_version,
        is_pre_basil_shape,
        event_id as last_event_id,
        latest.created_at as last_event_at,
        latest.loaded_at
    from latest
)

select *, {{ build_stamp() }} as built_at from final
