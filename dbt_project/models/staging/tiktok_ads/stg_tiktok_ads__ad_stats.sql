-- One row per advertiser, report day and ad: TikTok's figures as its report gave them, typed. Every value is read
-- totally (a metric that is not a number is null, never a failed build); the payload is TikTok's, not a browser's,
-- but it is still landed data.
with source as (
    select advertiser_id, stat_day, ad_id, payload, _loaded_at
    from {{ source('tiktok_ads', 'tiktok_ad_stats') }}
),

final as (
    select
        advertiser_id,
        stat_day,
        ad_id,
        {{ json_text('payload', 'metrics.ad_name') }} as ad_name,
        {{ json_text('payload', 'metrics.adgroup_id') }} as adgroup_id,
        {{ json_text('payload', 'metrics.adgroup_name') }} as adgroup_name,
        {{ json_text('payload', 'metrics.campaign_id') }} as campaign_id,
        {{ json_text('payload', 'metrics.campaign_name') }} as campaign_name,
        upper({{ json_text('payload', 'metrics.currency') }}) as currency,
        {{ safe_cast(json_text('payload', 'metrics.spend'), 'float8') }} as spend,
        {{ safe_cast(json_text('payload', 'metrics.impressions'), 'bigint') }} as impressions,
        {{ safe_cast(json_text('payload', 'metrics.clicks'), 'bigint') }} as clicks,
        {{ safe_cast(json_text('payload', 'metrics.complete_payment'), 'bigint') }} as tiktok_conversions,
        {{ safe_cast(json_text('payload', 'metrics.total_complete_payment_rate'), 'float8') }}
            as tiktok_conversion_value,
        _loaded_at as loaded_at
    from source
)

select * from final
