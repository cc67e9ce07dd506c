-- One row per subscription: its latest state by event time, with when it started and when it was cancelled.
-- Incremental: only objects with a new state are staged again (macro stripe_object_states).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='subscription_id',
          on_schema_change='fail') }}
{#- every field below, read from one parse of the payload, not one parse per field -#}
{%- set paths = ['customer', 'status', 'items.data[0].price.id', 'items.data[0].price.product', 'start_date', 'canceled_at', 'ended_at', 'cancellation_details.reason'] -%}
{%- set at = json_text_refs(paths) -%}
with latest as {{ materialized_cte() }} (
    {{ stripe_object_states('subscription', paths) }}
),

final as (
    select
        object_id as subscription_id,
        {{ at['customer'] }} as stripe_customer_id,
        {{ at['status'] }} as status,
        {{ at['items.data[0].price.id'] }} as price_id,
        {{ at['items.data[0].price.product'] }} as product_id,
        currency,
        {{ epoch_to_timestamp(at['start_date']) }} as started_at,
        {{ epoch_to_timestamp(at['canceled_at']) }} as canceled_at,
        {{ epoch_to_timestamp(at['ended_at']) }} as ended_at,
        {{ at['cancellation_details.reason'] }} as cancellation_reason,
        event_id as last_event_id,
        latest.created_at as last_event_at,
        latest.loaded_at
    from latest
)

select *, {{ build_stamp() }} as built_at from final
