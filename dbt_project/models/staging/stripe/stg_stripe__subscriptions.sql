-- One row per subscription: its latest state by event time, with when it started and when it was cancelled.
-- Incremental: only objects with a new state are staged again (macro new_object_states).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='subscription_id',
          on_schema_change='fail') }}
{% set o = 'data.object.' %}
{#- every field below, read from one parse of the payload (json_texts), not one parse per field -#}
{%- set paths = ['customer', 'status', 'items.data[0].price.id', 'items.data[0].price.product', 'start_date', 'canceled_at', 'ended_at', 'cancellation_details.reason'] -%}
{%- set at = json_text_refs(paths) -%}
{%- set object_paths = [] %}{% for p in paths %}{% do object_paths.append(o ~ p) %}{% endfor %}
with latest as (
    select *, {{ json_texts('payload', object_paths) }} as f
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'subscription'{{ new_object_states() }}
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

select * from final
