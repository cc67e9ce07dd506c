-- Revenue by the month it was paid, credited to channels, campaigns and ads by every attribution model, per
-- currency: the same money, split the way each model splits it.
-- A table, aggregated again from every credit in each run (a cost that grows with the history): as a view, every
-- query an analyst or a dashboard made would aggregate all credits instead, which costs more than a second at 3M
-- tracking events. An incremental form (by month) needs the months of credits deleted since: not done.
with credits as (
    select * from {{ ref('attribution_credits') }}
),

final as (
    select
        cast({{ dbt.date_trunc('month', 'purchased_at') }} as date) as transaction_month,
        attribution_model,
        channel,
        campaign,
        ad,
        currency,
        count(distinct purchase_id) as purchases_touched,
        sum(credit) as purchases_credited,
        sum(credited_amount) as revenue,
        sum(credited_net_amount) as net_revenue
    from credits
    group by 1, 2, 3, 4, 5, 6
)

select * from final
