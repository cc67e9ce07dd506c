-- What each TikTok ad bought, per month of acquisition: the spend TikTok reports for the ad and month, and the
-- customers whose first touch was a click on the ad that month, with their first purchase and all their revenue to
-- date (renewals included), so ROAS and CAC are cohort figures that grow as the customers renew. TikTok's own
-- attributed Complete Payments of the same ad and month stand beside our attributed purchases.
--
-- A touch is joined to its ad by TikTok's ad id from the landing URL (tt_ad_id, the __CID__ macro), else, for
-- touches from before the URL template, by campaign and ad name (utm_campaign and utm_content) when exactly one ad
-- has that pair of names; the rest stay as rows of their own without an ad id. Money is in var reporting_currency,
-- converted with seed fx_rates at the day it was spent or paid; an amount whose currency has no rate that day
-- makes the month's figure null (counted in *_without_rate) rather than be left out.
{% set reporting_currency = var('reporting_currency') | upper %}
with stats as (
    select * from {{ ref('stg_tiktok_ads__ad_stats') }}
    where ad_id is not null
),

rates as (
    select * from {{ ref('int_fx_rates') }}
),

-- each ad as TikTok names it now (its newest report day)
ads_ranked as (
    select
        ad_id, advertiser_id, campaign_id, campaign_name, adgroup_id, adgroup_name, ad_name, currency,
        row_number() over (partition by ad_id order by stat_day desc, loaded_at desc) as recency
    from stats
),

ads as (
    select ad_id, advertiser_id, campaign_id, campaign_name, adgroup_id, adgroup_name, ad_name, currency
    from ads_ranked
    where recency = 1
),

-- campaign and ad names that name exactly one ad, for touches without TikTok's ids
ad_names as (
    select campaign_name, ad_name, min(ad_id) as ad_id
    from (select distinct campaign_name, ad_name, ad_id from stats where campaign_name is not null and ad_name is not null)
        as named
    group by campaign_name, ad_name
    having count(*) = 1
),

spend as (
    select
        stats.ad_id,
        cast({{ dbt.date_trunc('month', 'stats.stat_day') }} as date) as acquisition_month,
        sum(stats.spend) as spend_account_currency,
        sum(stats.spend * account_rate.usd_per_unit / reporting_rate.usd_per_unit) as spend_converted,
        count(*) filter (where stats.spend is not null
                           and (account_rate.usd_per_unit is null or reporting_rate.usd_per_unit is null))
            as spend_days_without_rate,
        cast(sum(stats.impressions) as bigint) as impressions,
        cast(sum(stats.clicks) as bigint) as clicks,
        cast(sum(stats.tiktok_conversions) as bigint) as tiktok_reported_conversions,
        sum(stats.tiktok_conversion_value * account_rate.usd_per_unit / reporting_rate.usd_per_unit)
            as tiktok_reported_value
    from stats
    left join rates as account_rate
        on account_rate.currency = stats.currency
       and stats.stat_day >= account_rate.valid_from
       and (account_rate.valid_to is null or stats.stat_day < account_rate.valid_to)
    left join rates as reporting_rate
        on reporting_rate.currency = '{{ reporting_currency }}'
       and stats.stat_day >= reporting_rate.valid_from
       and (reporting_rate.valid_to is null or stats.stat_day < reporting_rate.valid_to)
    group by 1, 2
),

purchases as (
    select
        p.*,
        p.net_amount * purchase_rate.usd_per_unit / reporting_rate.usd_per_unit as net_converted
    from {{ ref('attributed_purchases') }} as p
    left join rates as purchase_rate
        on purchase_rate.currency = p.currency
       and cast(p.purchased_at as date) >= purchase_rate.valid_from
       and (purchase_rate.valid_to is null or cast(p.purchased_at as date) < purchase_rate.valid_to)
    left join rates as reporting_rate
        on reporting_rate.currency = '{{ reporting_currency }}'
       and cast(p.purchased_at as date) >= reporting_rate.valid_from
       and (reporting_rate.valid_to is null or cast(p.purchased_at as date) < reporting_rate.valid_to)
    where p.first_touch_channel = 'TikTok Ads'
),

-- the ad of each purchase's first touch
matched as (
    select
        purchases.*,
        coalesce(by_id.ad_id, purchases.first_touch_tiktok_ad_id, by_name.ad_id) as matched_ad_id,
        case
            when purchases.first_touch_tiktok_ad_id is not null then 'id'
            when by_name.ad_id is not null then 'name'
        end as matched_by
    from purchases
    left join ads as by_id on by_id.ad_id = purchases.first_touch_tiktok_ad_id
    left join ad_names as by_name
        on purchases.first_touch_tiktok_ad_id is null
       and by_name.campaign_name = purchases.first_touch_campaign
       and by_name.ad_name = purchases.first_touch_ad
),

revenue as (
    select
        matched_ad_id as ad_id,
        cast({{ dbt.date_trunc('month', 'first_touch_at') }} as date) as acquisition_month,
        -- touches joined to no ad keep their names, one row per campaign and ad name
        case when matched_ad_id is null then first_touch_campaign end as unmatched_campaign,
        case when matched_ad_id is null then first_touch_ad end as unmatched_ad,
        max(first_touch_tiktok_campaign_id) as touch_campaign_id,
        max(first_touch_tiktok_adgroup_id) as touch_adgroup_id,
        count(distinct customer_id) as customers,
        count(distinct customer_id) filter (where matched_by = 'name') as customers_matched_by_name,
        count(*) filter (where is_first_purchase) as first_purchases,
        count(*) as purchases,
        sum(net_converted) filter (where is_first_purchase) as first_purchase_revenue_converted,
        sum(net_converted) as lifetime_revenue_converted,
        count(*) filter (where net_amount is not null and net_converted is null) as purchases_without_rate
    from matched
    group by 1, 2, 3, 4
),

joined as (
    select
        coalesce(spend.ad_id, revenue.ad_id) as ad_id,
        coalesce(spend.acquisition_month, revenue.acquisition_month) as acquisition_month,
        revenue.unmatched_campaign,
        revenue.unmatched_ad,
        revenue.touch_campaign_id,
        revenue.touch_adgroup_id,
        spend.spend_account_currency,
        -- no report row for the ad and month (a touch joined to no ad, an advertiser not pulled): spend unknown
        case when spend.ad_id is not null and spend.spend_days_without_rate = 0 then coalesce(spend.spend_converted, 0) end
            as spend,
        coalesce(spend.spend_days_without_rate, 0) as spend_days_without_rate,
        coalesce(spend.impressions, 0) as impressions,
        coalesce(spend.clicks, 0) as clicks,
        coalesce(spend.tiktok_reported_conversions, 0) as tiktok_reported_conversions,
        spend.tiktok_reported_value,
        coalesce(revenue.customers, 0) as customers,
        coalesce(revenue.customers_matched_by_name, 0) as customers_matched_by_name,
        coalesce(revenue.first_purchases, 0) as first_purchases,
        coalesce(revenue.purchases, 0) as purchases,
        case when coalesce(revenue.purchases_without_rate, 0) = 0
             then coalesce(revenue.first_purchase_revenue_converted, 0) end as first_purchase_revenue,
        case when coalesce(revenue.purchases_without_rate, 0) = 0
             then coalesce(revenue.lifetime_revenue_converted, 0) end as lifetime_revenue,
        coalesce(revenue.purchases_without_rate, 0) as purchases_without_rate
    from spend
    full outer join revenue on revenue.ad_id = spend.ad_id and revenue.acquisition_month = spend.acquisition_month
),

final as (
    select
        ads.advertiser_id,
        coalesce(ads.campaign_id, joined.touch_campaign_id) as campaign_id,
        coalesce(ads.campaign_name, joined.unmatched_campaign) as campaign_name,
        coalesce(ads.adgroup_id, joined.touch_adgroup_id) as adgroup_id,
        ads.adgroup_name,
        joined.ad_id,
        coalesce(ads.ad_name, joined.unmatched_ad) as ad_name,
        joined.acquisition_month,
        '{{ reporting_currency }}' as reporting_currency,
        ads.currency as account_currency,
        joined.spend_account_currency,
        joined.spend,
        joined.impressions,
        joined.clicks,
        joined.customers,
        joined.customers_matched_by_name,
        joined.first_purchases,
        joined.purchases,
        joined.first_purchase_revenue,
        joined.lifetime_revenue,
        joined.lifetime_revenue / nullif(joined.spend, 0) as roas,
        joined.first_purchase_revenue / nullif(joined.spend, 0) as first_purchase_roas,
        joined.spend / nullif(joined.customers, 0) as cac,
        joined.tiktok_reported_conversions,
        joined.tiktok_reported_value,
        joined.tiktok_reported_conversions / nullif(cast(joined.purchases as float8), 0)
            as tiktok_reported_share_of_purchases,
        joined.spend_days_without_rate,
        joined.purchases_without_rate
    from joined
    left join ads on ads.ad_id = joined.ad_id
)

select * from final
