-- One row per touch: the first page view of each visit of a browser, with its marketing channel.
-- A visit starts at a browser's first page, after `session_timeout_minutes` idle, or whenever a page
-- arrives with a click id, UTM parameters or an outside referrer (a new campaign entry, as GA does).
{% set site_hosts = var('site_hosts') %}
with pages as (
    select * from {{ ref('stg_tracking__events') }}
    where event_type = 'page' and anonymous_id is not null
),

flagged as (
    select
        *,
        lag(event_at) over (partition by anonymous_id order by event_at, message_id) as previous_page_at,
        (referrer_host is not null
            and referrer_host not in ({% for h in site_hosts %}'{{ h }}'{% if not loop.last %}, {% endif %}{% endfor %}))
            as has_outside_referrer
    from pages
),

touches as (
    select *
    from flagged
    where previous_page_at is null
       or previous_page_at < event_at - interval '{{ var("session_timeout_minutes") }} minutes'
       or click_id is not null
       or utm_source is not null
       or has_outside_referrer
),

click_channels as (
    select click_id_type, channel, source from {{ ref('click_id_channels') }}
),

paid_sources as (
    select utm_source, channel from {{ ref('paid_sources') }}
),

referrer_matches as (
    -- the most specific listed host that the referrer host is, or is a subdomain of
    select
        touches.message_id,
        referrer_hosts.medium,
        referrer_hosts.source,
        row_number() over (partition by touches.message_id order by length(referrer_hosts.host) desc) as match_rank
    from touches
    join {{ ref('referrer_hosts') }} as referrer_hosts
        on touches.referrer_host = referrer_hosts.host
        or touches.referrer_host like '%.' || referrer_hosts.host
),

classified as (
    select
        touches.*,
        case
            when click_channels.channel is not null then click_channels.channel
            when touches.utm_medium in ('cpc', 'ppc', 'paid', 'paid_social', 'paidsocial', 'paid-social', 'cpm', 'display')
                 and paid_sources.channel is not null then paid_sources.channel
            when touches.utm_medium in ('email', 'e-mail', 'newsletter') then 'Email'
            when touches.utm_medium in ('cpc', 'ppc', 'paid', 'paid_social', 'paidsocial', 'paid-social', 'cpm', 'display')
                then 'Other Paid'
            when touches.utm_source is not null and referrer_matches.medium = 'search' then 'Organic Search'
            when touches.utm_source is not null then 'Other Campaign'
            when referrer_matches.medium = 'search' then 'Organic Search'
            when referrer_matches.medium = 'social' then 'Organic Social'
            when touches.has_outside_referrer then 'Referral'
            else 'Direct'
        end as channel,
        coalesce(touches.utm_source, click_channels.source, referrer_matches.source, touches.referrer_host, '(direct)')
            as source,
        coalesce(touches.utm_medium,
                 case when click_channels.channel is not null then 'paid'
                      when referrer_matches.medium = 'search' then 'organic'
                      when referrer_matches.medium = 'social' then 'social'
                      when touches.has_outside_referrer then 'referral'
                      else '(none)' end) as medium
    from touches
    left join click_channels on click_channels.click_id_type = touches.click_id_type
    left join paid_sources on paid_sources.utm_source = touches.utm_source
    left join referrer_matches on referrer_matches.message_id = touches.message_id and referrer_matches.match_rank = 1
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
