-- A view: int_touches reads it for the browsers a run recomputes only, so a table would classify every page of
-- history in every run.
{{ config(materialized='view') }}
-- One row per page view, with the channel it would be credited to were it the start of a visit: the click id
-- (seed click_id_channels), else UTM source and medium (seeds paid_sources, utm_mediums), else the referrer's
-- kind (seed referrer_hosts, read in staging), else Direct. Analysts change the grouping by editing those seeds:
-- TikTok Ads, Google Ads, Meta Ads, Microsoft Ads, LinkedIn Ads, X Ads, Other Paid, Email, Organic Search,
-- Organic Social, Other Campaign, Referral, Direct.
{% set site_hosts = var('site_hosts') %}
-- (stg_tracking__pages' rows, read from its table with their row id: int_touches fetches a few browsers' pages by it)
-- depends_on: {{ ref('stg_tracking__pages') }}
with pages as (
    select {{ row_locator() }} as event_row, * from {{ ref('stg_tracking__events') }}
    where event_type = 'page'
),

click_channels as (
    select click_id_type, channel, source from {{ ref('click_id_channels') }}
),

paid_sources as (
    select utm_source, channel from {{ ref('paid_sources') }}
),

utm_mediums as (
    select lower(utm_medium) as utm_medium, medium_group from {{ ref('utm_mediums') }}
),

flagged as (
    select
        pages.*,
        (referrer_host is not null
            and referrer_host not in ({% for h in site_hosts %}'{{ h }}'{% if not loop.last %}, {% endif %}{% endfor %}))
            as has_outside_referrer
    from pages
),

final as (
    select
        flagged.*,
        case
            when click_channels.channel is not null then click_channels.channel
            when utm_mediums.medium_group = 'paid' and paid_sources.channel is not null then paid_sources.channel
            when utm_mediums.medium_group = 'email' then 'Email'
            when utm_mediums.medium_group = 'paid' then 'Other Paid'
            when utm_mediums.medium_group = 'social' then 'Organic Social'
            when utm_mediums.medium_group = 'referral' then 'Referral'
            when flagged.utm_source is not null and flagged.referrer_medium = 'search' then 'Organic Search'
            when flagged.utm_source is not null then 'Other Campaign'
            when flagged.referrer_medium = 'search' then 'Organic Search'
            when flagged.referrer_medium = 'social' then 'Organic Social'
            when flagged.has_outside_referrer then 'Referral'
            else 'Direct'
        end as channel,
        coalesce(flagged.utm_source, click_channels.source, flagged.referrer_source, flagged.referrer_host, '(direct)')
            as source,
        coalesce(flagged.utm_medium,
                 case when click_channels.channel is not null then 'paid'
                      when flagged.referrer_medium = 'search' then 'organic'
                      when flagged.referrer_medium = 'social' then 'social'
                      when flagged.has_outside_referrer then 'referral'
                      else '(none)' end) as medium,
        -- a page that opens a new campaign entry (GA's rule): a click id, UTM parameters, an outside referrer
        (flagged.click_id is not null or flagged.utm_source is not null or flagged.has_outside_referrer)
            as is_campaign_entry
    from flagged
    left join click_channels on click_channels.click_id_type = flagged.click_id_type
    left join paid_sources on paid_sources.utm_source = flagged.utm_source
    left join utm_mediums on utm_mediums.utm_medium = flagged.utm_medium
)

select * from final
