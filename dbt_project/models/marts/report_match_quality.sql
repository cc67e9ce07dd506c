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
        cast(sum(value) as decimal(38, 3)) as revenue,
        cast(avg(case when has_ttclid then 1.0 else 0.0 end) as float8) as share_with_ttclid,
        cast(avg(case when has_email then 1.0 else 0.0 end) as float8) as share_with_email,
        cast(avg(case when has_phone then 1.0 else 0.0 end) as float8) as share_with_phone,
        cast(avg(case when has_name then 1.0 else 0.0 end) as float8) as share_with_name,
        cast(avg(case when has_address then 1.0 else 0.0 end) as float8) as share_with_address,
        cast(avg(case when has_ttclid or has_email or has_phone or has_ttp then 1.0 else 0.0 end) as float8)
            as share_with_any_tiktok_key,
        cast(avg(case when first_touch_channel is not null then 1.0 else 0.0 end) as float8) as share_attributed,
        cast(avg(case when attributed_to_tiktok then 1.0 else 0.0 end) as float8) as share_attributed_to_tiktok,
        cast(sum(case when has_ttclid then value else 0 end) as float8) / nullif(cast(sum(value) as float8), 0) as revenue_share_with_ttclid,
        cast(sum(case when has_email then value else 0 end) as float8) / nullif(cast(sum(value) as float8), 0) as revenue_share_with_email,
        cast(sum(case when has_phone then value else 0 end) as float8) / nullif(cast(sum(value) as float8), 0) as revenue_share_with_phone,
        cast(sum(case when has_name then value else 0 end) as float8) / nullif(cast(sum(value) as float8), 0) as revenue_share_with_name,
        cast(sum(case when has_address then value else 0 end) as float8) / nullif(cast(sum(value) as float8), 0) as revenue_share_with_address,
        cast(sum(case when has_ttclid or has_email or has_phone or has_ttp then value else 0 end) as float8) / nullif(cast(sum(value) as float8), 0)
            as revenue_share_with_any_tiktok_key,
        cast(sum(case when first_touch_channel is not null then value else 0 end) as float8) / nullif(cast(sum(value) as float8), 0)
            as revenue_share_attributed,
        cast(sum(case when attributed_to_tiktok then value else 0 end) as float8) / nullif(cast(sum(value) as float8), 0)
            as revenue_share_attributed_to_tiktok
    from joined
    group by 1, 2
)

select * from final
