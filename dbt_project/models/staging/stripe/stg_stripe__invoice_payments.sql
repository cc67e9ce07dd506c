-- One row per invoice payment (inpay_...): which PaymentIntent (or charge) paid which invoice. Since API version
-- 2025-03-31.basil this is the only place Stripe states that link (the invoice lost payment_intent and charge, the
-- PaymentIntent and the charge lost invoice). Two sources, both read: invoice_payment objects of their own events
-- (invoice_payment.paid and the other invoice_payment.* events), and the invoice payments listed inside an
-- invoice's latest state (`payments` is includable: only pulls and backfills that expand it carry it, never a
-- webhook). An invoice payment's own latest state wins over its copy inside an invoice. The invoice, PaymentIntent
-- and charge are read as ids whether the payload names them or a request expanded them into objects.
--
-- Incremental (delete+insert by invoice payment), as stg_stripe__refunds: an invoice payment is listed only in its
-- own invoice, so a run builds again those with a new state of their own, those a new invoice state lists, and
-- those an invoice whose state changed listed before; one left without any source is deleted by the post-hook.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='invoice_payment_id',
          on_schema_change='fail', post_hook="delete from {{ this }} where found_in is null") }}
{% set o = 'data.object.' %}
with
{% if is_incremental() %}
{{ own_or_listed_new_states('invoice_payment', 'invoice') }}
{% endif %}

invoice_payment_items as (
    select
        object_id as invoice_id,
        currency_exponent,
        created_at as state_at,
        loaded_at,
        {{ json_array_elements('payload', o ~ 'payments.data') }} as item
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'invoice'
      -- only expanded invoices carry the list; the others are skipped without parsing their payload
      and {{ text_contains('payload', '"invoice_payment"') }}
    {% if is_incremental() %}
      and object_id in (select object_id from new_states where object_type = 'invoice')
    {% endif %}
),

listed_in_invoices as (
    select
        {{ json_text('item', 'id') }} as invoice_payment_id,
        coalesce({{ json_text('item', 'invoice.id') }}, {{ json_text('item', 'invoice') }}, invoice_id) as invoice_id,
        {{ json_text('item', 'payment.type') }} as payment_type,
        coalesce({{ json_text('item', 'payment.payment_intent.id') }}, {{ json_text('item', 'payment.payment_intent') }}) as payment_intent_id,
        coalesce({{ json_text('item', 'payment.charge.id') }}, {{ json_text('item', 'payment.charge') }}) as charge_id,
        {{ json_text('item', 'status') }} as status,
        {{ json_text('item', 'is_default') }} as is_default,
        upper({{ json_text('item', 'currency') }}) as currency,
        {{ json_text('item', 'amount_paid') }} as amount_paid_minor,
        {{ to_major_units(json_text('item', 'amount_paid'), 'currency_exponent') }} as amount_paid,
        {{ json_text('item', 'status_transitions.paid_at') }} as paid_at_epoch,
        'invoice' as found_in,
        state_at,
        loaded_at
    from invoice_payment_items
),

{% if is_incremental() %}
{{ own_or_listed_touched('invoice_payment_id', 'invoice_id', 'invoice_payment', 'invoice', 'listed_in_invoices', 'invoice') }}
{% endif %}

own_states as (
    select
        object_id as invoice_payment_id,
        coalesce({{ json_text('payload', o ~ 'invoice.id') }}, {{ json_text('payload', o ~ 'invoice') }}) as invoice_id,
        {{ json_text('payload', o ~ 'payment.type') }} as payment_type,
        coalesce({{ json_text('payload', o ~ 'payment.payment_intent.id') }}, {{ json_text('payload', o ~ 'payment.payment_intent') }}) as payment_intent_id,
        coalesce({{ json_text('payload', o ~ 'payment.charge.id') }}, {{ json_text('payload', o ~ 'payment.charge') }}) as charge_id,
        {{ json_text('payload', o ~ 'status') }} as status,
        {{ json_text('payload', o ~ 'is_default') }} as is_default,
        currency,
        {{ json_text('payload', o ~ 'amount_paid') }} as amount_paid_minor,
        {{ to_major_units(json_text('payload', o ~ 'amount_paid'), 'currency_exponent') }} as amount_paid,
        {{ json_text('payload', o ~ 'status_transitions.paid_at') }} as paid_at_epoch,
        'invoice_payment_event' as found_in,
        created_at as state_at,
        loaded_at
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'invoice_payment'
    {% if is_incremental() %}
      and object_id in (select invoice_payment_id from touched)
    {% endif %}
),

unioned as (
    select * from own_states
    union all
    select * from listed_in_invoices where invoice_payment_id is not null
),

ranked as (
    select
        invoice_payment_id,
        invoice_id,
        payment_type,
        payment_intent_id,
        charge_id,
        status,
        (is_default = 'true') as is_default,
        currency,
        {{ safe_cast('amount_paid_minor', 'bigint') }} as amount_paid_minor,
        amount_paid,
        {{ epoch_to_timestamp('paid_at_epoch') }} as paid_at,
        found_in,
        loaded_at,
        row_number() over (
            partition by invoice_payment_id
            order by case when found_in = 'invoice_payment_event' then 0 else 1 end, state_at desc
        ) as recency
    from unioned
),

winners as (
    select
        invoice_payment_id, invoice_id, payment_type, payment_intent_id, charge_id, status, is_default,
        currency, amount_paid_minor, amount_paid, paid_at, found_in, loaded_at
    from ranked
    where recency = 1
),

final as (
    {{ own_or_listed_rows('invoice_payment_id', ['invoice_id', 'payment_type', 'payment_intent_id', 'charge_id', 'status', 'is_default', 'currency', 'amount_paid_minor', 'amount_paid', 'paid_at', 'found_in', 'loaded_at']) }}
)

select *, {{ build_stamp() }} as built_at from final
