-- One row per purchase, counting money once: each paid invoice; each paid Checkout Session in payment mode that
-- has no invoice; each succeeded PaymentIntent that belongs to neither and is not held back
-- (int_standalone_payment_intents). Which PaymentIntent paid an invoice comes from int_invoice_payment_links
-- (invoice payments since basil, the payload fields before). Refunds net against the purchase whose PaymentIntent
-- or charge they refund (charge.refunded, or refund events alone). Name and address are the purchase's own Stripe
-- identity (the invoice's customer fields, the session's customer_details, the charge's billing_details), else its
-- Stripe customer's.
with invoices as (
    select * from {{ ref('stg_stripe__invoices') }}
),

sessions as (
    select * from {{ ref('stg_stripe__checkout_sessions') }}
),

charges as (
    select * from {{ ref('stg_stripe__charges') }}
),

customers as (
    select * from {{ ref('stg_stripe__customers') }}
),

links as (
    select * from {{ ref('int_invoice_payment_links') }}
),

-- the PaymentIntent an invoice purchase is reported with (an invoice paid in parts has several; all net refunds)
invoice_payment_intents as (
    select invoice_id, min(payment_intent_id) as payment_intent_id
    from links
    where payment_intent_id is not null
    group by invoice_id
),

paid_invoices as (
    select
        invoices.invoice_id as purchase_id,
        'invoice' as purchase_type,
        invoices.stripe_customer_id,
        invoices.customer_email as email,
        invoices.customer_phone as phone,
        invoices.customer_name as name,
        invoices.customer_city as city,
        invoices.customer_state as state,
        invoices.customer_country as country,
        invoices.customer_postal_code as postal_code,
        sessions.client_reference_id,
        coalesce(invoices.paid_at, invoices.created_at) as purchased_at,
        invoices.amount_paid as amount,
        invoices.currency,
        invoice_payment_intents.payment_intent_id,
        invoices.subscription_id,
        invoices.billing_reason
    from invoices
    left join sessions on sessions.invoice_id = invoices.invoice_id
    left join invoice_payment_intents on invoice_payment_intents.invoice_id = invoices.invoice_id
    where invoices.status = 'paid' and invoices.amount_paid_minor > 0
),

checkout_payments as (
    select
        checkout_session_id as purchase_id,
        'checkout_session' as purchase_type,
        stripe_customer_id,
        customer_email as email,
        customer_phone as phone,
        customer_name as name,
        customer_city as city,
        customer_state as state,
        customer_country as country,
        customer_postal_code as postal_code,
        client_reference_id,
        coalesce(completed_at, created_at) as purchased_at,
        amount_total as amount,
        currency,
        payment_intent_id,
        cast(null as varchar) as subscription_id,
        cast(null as varchar) as billing_reason
    from sessions
    where mode = 'payment' and payment_status = 'paid' and invoice_id is null
),

standalone_payments as (
    select
        standalone.payment_intent_id as purchase_id,
        'payment_intent' as purchase_type,
        standalone.stripe_customer_id,
        coalesce(standalone.receipt_email, charges.billing_email) as email,
        charges.billing_phone as phone,
        charges.billing_name as name,
        charges.billing_city as city,
        charges.billing_state as state,
        charges.billing_country as country,
        charges.billing_postal_code as postal_code,
        cast(null as varchar) as client_reference_id,
        standalone.paid_at as purchased_at,
        standalone.amount_received as amount,
        standalone.currency,
        standalone.payment_intent_id,
        cast(null as varchar) as subscription_id,
        cast(null as varchar) as billing_reason
    from {{ ref('int_standalone_payment_intents') }} as standalone
    left join charges on charges.charge_id = standalone.latest_charge_id
    where standalone.hold_reason is null
),

purchases as (
    select * from paid_invoices
    union all
    select * from checkout_payments
    union all
    select * from standalone_payments
),

-- every PaymentIntent and bare charge whose refunds net against a purchase
purchase_payments as (
    select purchase_id, payment_intent_id, cast(null as varchar) as charge_id
    from purchases where purchase_type <> 'invoice' and payment_intent_id is not null
    union
    select invoice_id as purchase_id, payment_intent_id, charge_id from links
),

-- What each charge has refunded: its own amount_refunded (charge.refunded, Stripe's dependable signal) or, where
-- only refund events arrived so far, the sum of its refunds that did not fail.
refund_events as (
    select charge_id, max(payment_intent_id) as payment_intent_id, sum(amount) as amount_refunded
    from {{ ref('stg_stripe__refunds') }}
    where charge_id is not null and coalesce(status, 'succeeded') not in ('failed', 'canceled')
    group by charge_id
),

-- A refunded charge nets against the purchase of its PaymentIntent, or of its own id where an invoice names a bare
-- charge; a charge found both ways counts once (union). Equality joins only: a join on "a or b" is a nested loop.
refunded_charges as (
    select
        coalesce(charges.charge_id, refund_events.charge_id) as charge_id,
        coalesce(charges.payment_intent_id, refund_events.payment_intent_id) as payment_intent_id,
        greatest(coalesce(charges.amount_refunded, 0), coalesce(refund_events.amount_refunded, 0)) as amount_refunded
    from charges
    full outer join refund_events on refund_events.charge_id = charges.charge_id
    where coalesce(charges.amount_refunded_minor, 0) > 0 or refund_events.amount_refunded > 0
),

refunds as (
    select purchase_id, sum(amount_refunded) as refunded_amount
    from (
        select purchase_payments.purchase_id, refunded_charges.charge_id, refunded_charges.amount_refunded
        from refunded_charges
        join purchase_payments on purchase_payments.payment_intent_id = refunded_charges.payment_intent_id
        union
        select purchase_payments.purchase_id, refunded_charges.charge_id, refunded_charges.amount_refunded
        from refunded_charges
        join purchase_payments on purchase_payments.charge_id = refunded_charges.charge_id
    ) as matched
    group by purchase_id
),

final as (
    select
        purchases.purchase_id,
        purchases.purchase_type,
        purchases.stripe_customer_id,
        purchases.email,
        {{ normalise_email('purchases.email') }} as email_normalised,
        purchases.phone,
        {{ normalise_phone('purchases.phone') }} as phone_normalised,
        coalesce(purchases.name, customers.name) as customer_name,
        -- an address is taken whole from one object, never mixed from two
        case when purchases.country is not null or purchases.postal_code is not null or purchases.city is not null
             then purchases.city else customers.city end as address_city,
        case when purchases.country is not null or purchases.postal_code is not null or purchases.city is not null
             then purchases.state else customers.state end as address_state,
        case when purchases.country is not null or purchases.postal_code is not null or purchases.city is not null
             then purchases.country else customers.country end as address_country,
        case when purchases.country is not null or purchases.postal_code is not null or purchases.city is not null
             then purchases.postal_code else customers.postal_code end as address_postal_code,
        purchases.client_reference_id,
        purchases.purchased_at,
        purchases.amount,
        coalesce(refunds.refunded_amount, 0) as refunded_amount,
        purchases.amount - coalesce(refunds.refunded_amount, 0) as net_amount,
        purchases.currency,
        purchases.payment_intent_id,
        purchases.subscription_id,
        purchases.billing_reason,
        coalesce(purchases.billing_reason = 'subscription_cycle', false) as is_renewal
    from purchases
    left join refunds on refunds.purchase_id = purchases.purchase_id
    left join customers on customers.stripe_customer_id = purchases.stripe_customer_id
)

select * from final
