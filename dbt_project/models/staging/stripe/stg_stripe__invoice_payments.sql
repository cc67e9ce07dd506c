-- One row per invoice payment (inpay_...): which PaymentIntent (or charge) paid which invoice. Since API version
-- 2025-03-31.basil this is the only place Stripe states that link (the invoice lost payment_intent and charge, the
-- PaymentIntent and the charge lost invoice). Two sources, both read: invoice_payment objects of their own events
-- (invoice_payment.paid and the other invoice_payment.* events), and the invoice payments listed inside an
-- invoice's latest state (`payments` is includable: only pulls and backfills that expand it carry it, never a
-- webhook). An invoice payment's own latest state wins over its copy inside an invoice. The invoice, PaymentIntent
-- and charge are read as ids whether the payload names them or a request expanded them into objects.
{% set o = 'data.object.' %}
with own_states as (
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
        created_at as state_at
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'invoice_payment'
),

invoice_payment_items as (
    select
        object_id as invoice_id,
        currency_exponent,
        created_at as state_at,
        {{ json_array_elements('payload', o ~ 'payments.data') }} as item
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'invoice'
      -- only expanded invoices carry the list; the others are skipped without parsing their payload
      and {{ text_contains('payload', '"invoice_payment"') }}
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
        state_at
    from invoice_payment_items
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
        row_number() over (
            partition by invoice_payment_id
            order by case when found_in = 'invoice_payment_event' then 0 else 1 end, state_at desc
        ) as recency
    from unioned
),

final as (
    select
        invoice_payment_id, invoice_id, payment_type, payment_intent_id, charge_id, status, is_default,
        currency, amount_paid_minor, amount_paid, paid_at, found_in
    from ranked
    where recency = 1
)

select * from final
