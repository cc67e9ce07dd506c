-- One row per Stripe customer: its latest state by event time.
-- Incremental: only objects with a new state are staged again (macro new_object_states).
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='stripe_customer_id',
          on_schema_change='fail') }}
{% set o = 'data.object.' %}
{#- every field below, read from one parse of the payload (json_texts), not one parse per field -#}
{%- set paths = ['email', 'phone', 'name', 'address.country', 'created'] -%}
{%- set at = json_text_refs(paths) -%}
{%- set object_paths = [] %}{% for p in paths %}{% do object_paths.append(o ~ p) %}{% endfor %}
with latest as (
    select *, {{ json_texts('payload', object_paths) }} as f
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'customer'{{ new_object_states() }}
),

final as (
    select
        object_id as stripe_customer_id,
        {{ at['email'] }} as email,
        {{ at['phone'] }} as phone,
        {{ at['name'] }} as name,
        {{ at['address.country'] }} as country,
        {{ epoch_to_timestamp(at['created']) }} as created_at,
        (event_type = 'customer.deleted') as is_deleted,
        event_id as last_event_id,
        latest.created_at as last_event_at,
        latest.loaded_at
    from latest
)

select * from final
