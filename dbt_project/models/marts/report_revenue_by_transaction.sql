-- Revenue by the month it was paid, credited to channels, campaigns and ads by every attribution model, per
-- currency: the same money, split the way each model splits it.
-- A view: as a table it was aggregated again from every row of attribution_credits in every run, a cost that
-- grew with the history whatever the run brought; the view aggregates the (incremental) mart when it is read.
{{ config(materialized='view') }}
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
