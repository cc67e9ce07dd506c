-- Lifetime value of the customers each first touch brought: revenue by the month, channel, campaign, ad and
-- landing page of the customer's first touch (renewals and later purchases included), per currency.
-- A view: as a table it was aggregated again from every row of attributed_purchases in every run, a cost that
-- grew with the history whatever the run brought; the view aggregates the (incremental) mart when it is read.
{{ config(materialized='view') }}
with purchases as (
    select * from {{ ref('attributed_purchases') }}
),

final as (
    select
        cast({{ dbt.date_trunc('month', 'first_touch_at') }} as date) as acquisition_month,
        coalesce(first_touch_channel, '(no touch tracked)') as channel,
        first_touch_source as source,
        first_touch_campaign as campaign,
        first_touch_ad as ad,
        first_touch_landing_page as landing_page,
        currency,
        count(distinct customer_id) as customers,
        count(*) as purchases,
        count(*) filter (where is_renewal) as renewals,
        cast(sum(amount) as decimal(38, 3)) as revenue,
        cast(sum(refunded_amount) as decimal(38, 3)) as refunded,
        cast(sum(net_amount) as decimal(38, 3)) as net_revenue,
        cast(sum(net_amount) as float8) / count(distinct customer_id) as net_revenue_per_customer
    from purchases
    group by 1, 2, 3, 4, 5, 6, 7
)

select * from final
