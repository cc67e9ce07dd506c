-- One row per Stripe customer: its latest state by event time.
-- Incremental: only objects with a new state are staged again (macro stripe_object_states).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='stripe_customer_id',
          on_schema_change='fail') }}
{#- every field below, read from one parse of the payload, not one parse per field -#}
{%- set paths = ['email', 'phone', 'name', 'address.city', 'address.state', 'address.country', 'address.postal_code', 'created'] -%}
{%- set at = json_text_refs(paths) -%}
with latest as {{ materialized_cte() }} (
    {{ stripe_object_states('customer', paths) }}
),

final as (
    select
        object_id as stripe_customer_id,
        {{ at['email'] }} as email,
        {{ at['phone'] }} as phone,
        {{ at['name'] }} as name,
        {{ at['address.city'] }} as city,
        {{ at['address.state'] }} as state,
        {{ at['address.country'] }} as country,
        {{ at['address.postal_code'] }} as postal_code,
        {{ epoch_to_timestamp(at['created']) }} as created_at,
        (event_type = 'customer.deleted') as is_deleted,
        event_id as last_event_id,
        latest.created_at as last_event_at,
        latest.loaded_at
    from latest
)

select *, {{ build_stamp() }} as built_at from final
