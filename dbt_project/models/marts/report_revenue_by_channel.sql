-- Net revenue by month of acquisition and first-touch channel, every currency converted to var reporting_currency
-- (seed fx_rates at the day paid): the one figure per channel and month that report_revenue_by_acquisition, per
-- currency, cannot add up. A purchase whose currency has no rate that day is counted in purchases_without_rate.
{% set reporting_currency = var('reporting_currency') | upper %}
with purchases as (
    select * from {{ ref('attributed_purchases') }}
),

rates as (
    select * from {{ ref('int_fx_rates') }}
),

converted as (
    select
        purchases.*,
        purchases.net_amount * purchase_rate.usd_per_unit / reporting_rate.usd_per_unit as net_converted
    from purchases
    left join rates as purchase_rate
        on purchase_rate.currency = purchases.currency
       and cast(purchases.purchased_at as date) >= purchase_rate.valid_from
       and (purchase_rate.valid_to is null or cast(purchases.purchased_at as date) < purchase_rate.valid_to)
    left join rates as reporting_rate
        on reporting_rate.currency = '{{ reporting_currency }}'
       and cast(purchases.purchased_at as date) >= reporting_rate.valid_from
       and (reporting_rate.valid_to is null or cast(purchases.purchased_at as date) < reporting_rate.valid_to)
),

final as (
    select
        cast({{ dbt.date_trunc('month', 'coalesce(first_touch_at, purchased_at)') }} as date) as acquisition_month,
        coalesce(first_touch_channel, '(no touch tracked)') as channel,
        '{{ reporting_currency }}' as reporting_currency,
        count(distinct customer_id) as customers,
        count(*) as purchases,
        count(*) filter (where is_renewal) as renewals,
        sum(net_converted) as net_revenue,
        count(*) filter (where net_amount is not null and net_converted is null) as purchases_without_rate
    from converted
    group by 1, 2, 3
)

select * from final
