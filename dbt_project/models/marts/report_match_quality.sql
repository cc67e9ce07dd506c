-- What share of purchases and revenue carries each match key TikTok can use (name and address included), is attributed at all, and is
-- attributed to TikTok, by month and currency: why TikTok reports fewer sales than Stripe, in numbers.
with conversions as (
    select * from {{ ref('tiktok_conversions') }} where purchase_id is not null
),

purchases as (
    select purchase_id, first_touch_channel from {{ ref('attributed_purchases') }}
),

joined as (
    select conversions.*, purchases.first_touch_channel
    from conversions join purchases using (purchase_id)
),

final as (
    select
        cast({{ dbt.date_trunc('month', 'event_time') }} as date) as month,
        currency,
        count(*) as purchases,
        sum(value) as revenue,
        avg(case when has_ttclid then 1.0 else 0.0 end) as share_with_ttclid,
        avg(case when has_email then 1.0 else 0.0 end) as share_with_email,
        avg(case when has_phone then 1.0 else 0.0 end) as share_with_phone,
        avg(case when has_name then 1.0 else 0.0 end) as share_with_name,
        avg(case when has_address then 1.0 else 0.0 end) as share_with_address,
        avg(case when has_ttclid or has_email or has_phone or has_ttp then 1.0 else 0.0 end)
            as share_with_any_tiktok_key,
        avg(case when first_touch_channel is not null then 1.0 else 0.0 end) as share_attributed,
        avg(case when attributed_to_tiktok then 1.0 else 0.0 end) as share_attributed_to_tiktok,
        sum(case when has_ttclid then value else 0 end) / nullif(sum(value), 0) as revenue_share_with_ttclid,
        sum(case when has_email then value else 0 end) / nullif(sum(value), 0) as revenue_share_with_email,
        sum(case when has_phone then value else 0 end) / nullif(sum(value), 0) as revenue_share_with_phone,
        sum(case when has_name then value else 0 end) / nullif(sum(value), 0) as revenue_share_with_name,
        sum(case when has_address then value else 0 end) / nullif(sum(value), 0) as revenue_share_with_address,
        sum(case when has_ttclid or has_email or has_phone or has_ttp then value else 0 end) / nullif(sum(value), 0)
            as revenue_share_with_any_tiktok_key,
        sum(case when first_touch_channel is not null then value else 0 end) / nullif(sum(value), 0)
            as revenue_share_attributed,
        sum(case when attributed_to_tiktok then value else 0 end) / nullif(sum(value), 0)
            as revenue_share_attributed_to_tiktok
    from joined
    group by 1, 2
)

select * from final
