-- One row per touch: the first page view of each visit of a browser, with its marketing channel.
-- A visit starts at a browser's first page, after `session_timeout_minutes` idle, or whenever a page
-- arrives with a click id, UTM parameters or an outside referrer (a new campaign entry, as GA does).
-- Channels come from int_page_channels (seeds click_id_channels, paid_sources, utm_mediums, referrer_hosts).
-- Page views of bots (seed bot_user_agents) are not touches.
--
-- Incremental: a visit is decided by the pages of its own browser only, so a run recomputes the touches of the
-- browsers that have pages in loads not taken in yet, from all of each such browser's pages, and replaces that
-- browser's touches (delete+insert by browser: a late page can merge or split its visits). `browser_loaded_at`,
-- the newest load among a browser's pages, records which loads are taken in (macro unstaged_loads); `built_at`, the
-- build that wrote the browser's touches, tells customer_journeys which browsers changed without comparing touches.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='anonymous_id',
          on_schema_change='fail') }}
-- depends_on: {{ ref('stg_tracking__events') }}
with pages as (
    select * from {{ ref('int_page_channels') }}
    where anonymous_id is not null and not is_bot
    {% if is_incremental() %}
      -- (read from the events table: the pages view would classify every page's channel to list its loads; the
      -- browsers' pages fetched by row id, rows_where)
      {%- set page_events = "(select anonymous_id, loaded_at from " ~ ref('stg_tracking__events')
                            ~ " where event_type = 'page') as page_events" %}
      and {{ rows_where('event_row', ref('stg_tracking__events'),
                        "event_type = 'page' and anonymous_id in (select anonymous_id from " ~ page_events
                        ~ " where " ~ unstaged_loads(page_events, 'loaded_at', 'browser_loaded_at') ~ ")") }}
    {% endif %}
),

flagged as (
    select
        *,
        lag(event_at) over (partition by anonymous_id order by event_at, message_id) as previous_page_at,
        max(loaded_at) over (partition by anonymous_id) as browser_loaded_at
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
        tiktok_campaign_id,
        tiktok_adgroup_id,
        tiktok_ad_id,
        click_id_type,
        click_id,
        ttclid,
        page_url as url,
        page_path as landing_path,
        referrer,
        referrer_host,
        browser_loaded_at
    from classified
)

select *, {{ build_stamp() }} as built_at from final
