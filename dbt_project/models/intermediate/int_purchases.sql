-- One row per purchase, counting money once: each paid invoice; each paid Checkout Session in payment
-- mode that has no invoice; each succeeded PaymentIntent that belongs to neither. Refunds net against
-- the purchase whose PaymentIntent (or, in pre-basil shapes, invoice) they refund.
with invoices as (
    select * from {{ ref('stg_stripe__invoices') }}
),

sessions as (
    select * from {{ ref('stg_stripe__checkout_sessions') }}
),

payment_intents as (
    select * from {{ ref('stg_stripe__payment_intents') }}
),

charges as (
    select * from {{ ref('stg_stripe__charges') }}
),

newest_stripe_event as (
    select max(created_at) as newest_event_at from {{ ref('stg_stripe__events') }}
),

paid_invoices as (
    select
        invoices.invoice_id as purchase_id,
        'invoice' as purchase_type,
        invoices.stripe_customer_id,
        invoices.customer_email as email,
        invoices.customer_phone as phone,
        sessions.client_reference_id,
        coalesce(invoices.paid_at, invoices.created_at) as purchased_at,
        invoices.amount_paid as amount,
        invoices.currency,
        invoices.payment_intent_id,
        invoices.subscription_id,
        invoices.billing_reason,
        true as is_settled
    from invoices
    left join sessions on sessions.invoice_id = invoices.invoice_id
    where invoices.status = 'paid' and invoices.amount_paid_minor > 0
),

checkout_payments as (
    select
        checkout_session_id as purchase_id,
        'checkout_session' as purchase_type,
        stripe_customer_id,
        customer_email as email,
        customer_phone as phone,
        client_reference_id,
        coalesce(completed_at, created_at) as purchased_at,
        amount_total as amount,
        currency,
        payment_intent_id,
        cast(null as varchar) as subscription_id,
        cast(null as varchar) as billing_reason,
        true as is_settled
    from sessions
    where mode = 'payment' and payment_status = 'paid' and invoice_id is null
),

claimed_payment_intents as (
    select payment_intent_id from invoices where payment_intent_id is not null
    union
    select payment_intent_id from sessions where payment_intent_id is not null
),

standalone_payments as (
    select
        payment_intents.payment_intent_id as purchase_id,
        'payment_intent' as purchase_type,
        payment_intents.stripe_customer_id,
        coalesce(payment_intents.receipt_email, charges.billing_email) as email,
        charges.billing_phone as phone,
        cast(null as varchar) as client_reference_id,
        coalesce(payment_intents.succeeded_at, payment_intents.created_at) as purchased_at,
        payment_intents.amount_received as amount,
        payment_intents.currency,
        payment_intents.payment_intent_id,
        cast(null as varchar) as subscription_id,
        cast(null as varchar) as billing_reason,
        coalesce(payment_intents.succeeded_at, payment_intents.created_at)
            <= newest_stripe_event.newest_event_at - interval '{{ var("standalone_payment_settle_minutes") }} minutes'
            as is_settled
    from payment_intents
    cross join newest_stripe_event
    left join charges on charges.charge_id = payment_intents.latest_charge_id
    where payment_intents.status = 'succeeded'
      and payment_intents.invoice_id is null
      and payment_intents.amount_received_minor > 0
      and payment_intents.payment_intent_id not in (select payment_intent_id from claimed_payment_intents)
),

purchases as (
    select * from paid_invoices
    union all
    select * from checkout_payments
    union all
    select * from standalone_payments
),

-- A refunded charge nets against the purchase with its PaymentIntent or, when either side has no PaymentIntent,
-- against its invoice's purchase. The two matches exclude each other, so they are two equality joins (a join on
-- "a or b" is a nested loop over every charge and purchase).
refunded_charges as (
    select * from charges where amount_refunded_minor > 0
),

refunds as (
    select purchase_id, sum(amount_refunded) as refunded_amount
    from (
        select purchases.purchase_id, refunded_charges.amount_refunded
        from refunded_charges
        join purchases on purchases.payment_intent_id = refunded_charges.payment_intent_id
        union all
        select purchases.purchase_id, refunded_charges.amount_refunded
        from refunded_charges
        join purchases on purchases.purchase_id = refunded_charges.invoice_id
        where purchases.payment_intent_id is null or refunded_charges.payment_intent_id is null
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
        purchases.client_reference_id,
        purchases.purchased_at,
        purchases.amount,
        coalesce(refunds.refunded_amount, 0) as refunded_amount,
        purchases.amount - coalesce(refunds.refunded_amount, 0) as net_amount,
        purchases.currency,
        purchases.payment_intent_id,
        purchases.subscription_id,
        purchases.billing_reason,
        coalesce(purchases.billing_reason = 'subscription_cycle', false) as is_renewal,
        purchases.is_settled
    from purchases
    left join refunds on refunds.purchase_id = purchases.purchase_id
)

select * from final
