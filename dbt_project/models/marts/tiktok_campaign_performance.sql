-- tiktok_ad_performance summed per campaign and month of acquisition; the ratios computed again from the sums.
with ads as (
    select * from {{ ref('tiktok_ad_performance') }}
),

summed as (
    select
        advertiser_id,
        campaign_id,
        campaign_name,
        acquisition_month,
        reporting_currency,
        -- null when any ad's spend of the month had no rate: a partial sum would overstate the ROAS
        case when count(*) filter (where spend is null) = 0 then sum(spend) end as spend,
        cast(sum(impressions) as bigint) as impressions,
        cast(sum(clicks) as bigint) as clicks,
        cast(sum(customers) as bigint) as customers,
        cast(sum(customers_matched_by_name) as bigint) as customers_matched_by_name,
        cast(sum(first_purchases) as bigint) as first_purchases,
        cast(sum(purchases) as bigint) as purchases,
        case when count(*) filter (where first_purchase_revenue is null) = 0 then sum(first_purchase_revenue) end
            as first_purchase_revenue,
        case when count(*) filter (where lifetime_revenue is null) = 0 then sum(lifetime_revenue) end
            as lifetime_revenue,
        cast(sum(tiktok_reported_conversions) as bigint) as tiktok_reported_conversions,
        sum(tiktok_reported_value) as tiktok_reported_value,
        count(*) filter (where ad_id is not null) as ads
    from ads
    group by 1, 2, 3, 4, 5
),

final as (
    select
        *,
        lifetime_revenue / nullif(spend, 0) as roas,
        first_purchase_revenue / nullif(spend, 0) as first_purchase_roas,
        spend / nullif(customers, 0) as cac,
        tiktok_reported_conversions / nullif(cast(purchases as float8), 0) as tiktok_reported_share_of_purchases
    from summed
)

select * from final
