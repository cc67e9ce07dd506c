-- One row per touch: the first page view of each visit of a browser, with its marketing channel.
-- A visit starts at a browser's first page, after `session_timeout_minutes` idle, or whenever a page
-- arrives with a click id, UTM parameters or an outside referrer (a new campaign entry, as GA does).
-- Channels come from stg_tracking__pages (seeds click_id_channels, paid_sources, utm_mediums, referrer_hosts).
-- Page views of bots (seed bot_user_agents) are not touches.
with pages as (
    select * from {{ ref('stg_tracking__pages') }}
    where anonymous_id is not null and not is_bot
),

flagged as (
    select
        *,
        lag(event_at) over (partition by anonymous_id order by event_at, message_id) as previous_page_at
    from pages
),

classified as (
    select *
    from flagged
    where previous_page_at is null
       or previous_page_at < event_at - interval '{{ var("session_timeout_minutes") }} minutes'
       or is_campaign_entry
),

final as (
    select
        message_id as touch_id,
        anonymous_id,
        event_at as touched_at,
        channel,
        source,
        medium,
        utm_campaign as campaign,
        utm_content as ad,
        utm_term as term,
        click_id_type,
        click_id,
        ttclid,
        page_url as url,
        page_path as landing_path,
        referrer,
        referrer_host
    from classified
)

select * from final
