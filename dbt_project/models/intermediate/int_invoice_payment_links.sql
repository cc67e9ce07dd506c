-- One row per link between an invoice and the PaymentIntent (or bare charge) that paid it, from wherever Stripe
-- states it: invoice payments (basil and later: invoice_payment.* events, or an invoice's expanded `payments`) and,
-- for pre-basil shapes, the invoice's own payment_intent / charge and the PaymentIntent's or charge's invoice.
-- Only paid invoice payments link money; an open or canceled attempt paid nothing.
with invoice_payments as (
    select invoice_id, payment_intent_id, charge_id, 'invoice_payment' as linked_by
    from {{ ref('stg_stripe__invoice_payments') }}
    where status = 'paid' and invoice_id is not null and (payment_intent_id is not null or charge_id is not null)
),

pre_basil_invoices as (
    select invoice_id, payment_intent_id, charge_id, 'invoice' as linked_by
    from {{ ref('stg_stripe__invoices') }}
    where payment_intent_id is not null or charge_id is not null
),

pre_basil_payment_intents as (
    select invoice_id, payment_intent_id, cast(null as varchar) as charge_id, 'payment_intent' as linked_by
    from {{ ref('stg_stripe__payment_intents') }}
    where invoice_id is not null
),

pre_basil_charges as (
    select invoice_id, payment_intent_id, charge_id, 'charge' as linked_by
    from {{ ref('stg_stripe__charges') }}
    where invoice_id is not null
),

unioned as (
    select * from invoice_payments
    union all
    select * from pre_basil_invoices
    union all
    select * from pre_basil_payment_intents
    union all
    select * from pre_basil_charges
),

final as (
    -- one row per link, whichever sources state it
    select invoice_id, payment_intent_id, charge_id, min(linked_by) as linked_by
    from unioned
    group by invoice_id, payment_intent_id, charge_id
)

select * from final
