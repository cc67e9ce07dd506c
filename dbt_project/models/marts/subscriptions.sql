-- One row per subscription: start, cancellation, the invoices it paid, and the first touch of the customer
-- it belongs to (so a campaign's subscribers and their churn can be read side by side).
with subscriptions as (
    select * from {{ ref('stg_stripe__subscriptions') }}
),

purchases as (
    select * from {{ ref('attributed_purchases') }} where subscription_id is not null
),

paid as (
    select
        subscription_id,
        min(customer_id) as customer_id,
        count(*) as invoices_paid,
        count(*) filter (where is_renewal) as renewals,
        cast(sum(amount) as decimal(38, 3)) as revenue,
        cast(sum(net_amount) as decimal(38, 3)) as net_revenue,
        min(purchased_at) as first_paid_at,
        max(purchased_at) as last_paid_at,
        min(first_touch_channel) as first_touch_channel,
        min(first_touch_campaign) as first_touch_campaign
    from purchases
    group by subscription_id
),

final as (
    select
        coalesce(subscriptions.subscription_id, paid.subscription_id) as subscription_id,
        subscriptions.stripe_customer_id,
        paid.customer_id,
        subscriptions.status,
        subscriptions.product_id,
        subscriptions.price_id,
        coalesce(subscriptions.currency, null) as currency,
        coalesce(subscriptions.started_at, paid.first_paid_at) as started_at,
        subscriptions.canceled_at,
        subscriptions.cancellation_reason,
        subscriptions.canceled_at is not null as is_canceled,
        coalesce(paid.invoices_paid, 0) as invoices_paid,
        coalesce(paid.renewals, 0) as renewals,
        paid.revenue,
        paid.net_revenue,
        paid.last_paid_at,
        paid.first_touch_channel,
        paid.first_touch_campaign
    from subscriptions
    full outer join paid on paid.subscription_id = subscriptions.subscription_id
)

select * from final
