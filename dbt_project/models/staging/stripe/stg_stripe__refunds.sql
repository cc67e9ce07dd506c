-- One row per refund (re_...). Two sources, both read: refund objects of their own events (refund.created,
-- refund.updated, charge.refund.updated) and the refunds listed inside a charge's latest state (charge.refunded
-- webhooks of older API versions, and backfilled charges, which are listed with expand[]=data.refunds).
-- A refund's own latest state wins over its copy inside a charge. Amounts in major units by the currency's
-- exponent. Purchases net refunds through the charge's amount_refunded (stg_stripe__charges); this model is
-- the per-refund detail (when, why, status).
--
-- Incremental (delete+insert by refund): a refund is listed only in its own charge, so its row depends on its own
-- latest state and on its charge's. A run reads the refund and charge states of the loads it has not taken in (macro
-- new_object_states), and builds again the refunds with a new state of their own, those a new charge state lists,
-- and those a charge whose state changed listed before (a newer state of a charge may list none: only some webhooks
-- and backfills carry the list). A refund left without any source gets a row without `found_in`, which the
-- post-hook deletes with the row it replaced.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='refund_id',
          on_schema_change='fail', post_hook="delete from {{ this }} where found_in is null") }}
{% set o = 'data.object.' %}
with
{% if is_incremental() %}
{{ own_or_listed_new_states('refund', 'charge') }}
{% endif %}

charge_refund_items as (
    select
        object_id as charge_id,
        {{ json_text('payload', o ~ 'payment_intent') }} as charge_payment_intent_id,
        currency,
        currency_exponent,
        created_at as state_at,
        loaded_at,
        {{ json_array_elements('payload', o ~ 'refunds.data') }} as item
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'charge'
    {% if is_incremental() %}
      and object_id in (select object_id from new_states where object_type = 'charge')
    {% endif %}
),

charge_refunds as (
    select
        {{ json_text('item', 'id') }} as refund_id,
        charge_id,
        coalesce({{ json_text('item', 'payment_intent') }}, charge_payment_intent_id) as payment_intent_id,
        {{ json_text('item', 'status') }} as status,
        {{ json_text('item', 'reason') }} as reason,
        currency,
        {{ safe_cast(json_text('item', 'amount'), 'bigint') }} as amount_minor,
        {{ to_major_units(json_text('item', 'amount'), 'currency_exponent') }} as amount,
        {{ epoch_to_timestamp(json_text('item', 'created')) }} as created_at,
        'charge' as found_in,
        state_at,
        loaded_at
    from charge_refund_items
),

{% if is_incremental() %}
{{ own_or_listed_touched('refund_id', 'charge_id', 'refund', 'charge', 'charge_refunds', 'charge') }}
{% endif %}

refund_objects as (
    select
        object_id as refund_id,
        {{ json_text('payload', o ~ 'charge') }} as charge_id,
        {{ json_text('payload', o ~ 'payment_intent') }} as payment_intent_id,
        {{ json_text('payload', o ~ 'status') }} as status,
        {{ json_text('payload', o ~ 'reason') }} as reason,
        currency,
        {{ safe_cast(json_text('payload', o ~ 'amount'), 'bigint') }} as amount_minor,
        {{ to_major_units(json_text('payload', o ~ 'amount'), 'currency_exponent') }} as amount,
        {{ epoch_to_timestamp(json_text('payload', o ~ 'created')) }} as created_at,
        'refund_event' as found_in,
        created_at as state_at,
        loaded_at
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'refund'
    {% if is_incremental() %}
      and object_id in (select refund_id from touched)
    {% endif %}
),

unioned as (
    select * from refund_objects
    union all
    select * from charge_refunds where refund_id is not null
),

ranked as (
    select
        refund_id, charge_id, payment_intent_id, status, reason, currency, amount_minor, amount, created_at,
        found_in, loaded_at,
        row_number() over (
            partition by refund_id
            order by case when found_in = 'refund_event' then 0 else 1 end, state_at desc
        ) as recency
    from unioned
),

winners as (
    select
        refund_id, charge_id, payment_intent_id, status, reason, currency, amount_minor, amount, created_at,
        found_in, loaded_at
    from ranked
    where recency = 1
),

final as (
    {{ own_or_listed_rows('refund_id', ['charge_id', 'payment_intent_id', 'status', 'reason', 'currency', 'amount_minor', 'amount', 'created_at', 'found_in', 'loaded_at']) }}
)

select *, {{ build_stamp() }} as built_at from final
