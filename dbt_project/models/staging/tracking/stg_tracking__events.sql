-- One row per tracking event (page, identify, track) with the page URL parsed: UTM parameters,
-- click ids, referrer host, the _ttp cookie, consent and the identity traits.
{% set click_ids = ['ttclid', 'gclid', 'gbraid', 'wbraid', 'dclid', 'fbclid', 'msclkid', 'li_fat_id', 'twclid'] %}
with source as (
    select message_id, type, event_name, anonymous_id, user_id, event_timestamp, payload
    from {{ source('tracking', 'tracking_events') }}
),

parsed as (
    select
        message_id,
        type as event_type,
        event_name,
        anonymous_id,
        user_id,
        event_timestamp as event_at,
        coalesce({{ json_text('payload', 'context.page.url') }}, {{ json_text('payload', 'properties.url') }}) as page_url,
        coalesce({{ json_text('payload', 'context.page.path') }}, {{ json_text('payload', 'properties.path') }}) as page_path,
        coalesce({{ json_text('payload', 'context.page.title') }}, {{ json_text('payload', 'properties.title') }}) as page_title,
        nullif(coalesce({{ json_text('payload', 'context.page.referrer') }},
                        {{ json_text('payload', 'properties.referrer') }}), '') as referrer,
        {{ json_text('payload', 'context.campaign.source') }} as context_utm_source,
        {{ json_text('payload', 'context.campaign.medium') }} as context_utm_medium,
        {{ json_text('payload', 'context.campaign.name') }} as context_utm_campaign,
        {{ json_text('payload', 'context.campaign.content') }} as context_utm_content,
        {{ json_text('payload', 'context.campaign.term') }} as context_utm_term,
        {{ json_text('payload', 'context.userAgent') }} as user_agent,
        {{ json_text('payload', 'context.ip') }} as ip,
        {{ json_text('payload', 'context.locale') }} as locale,
        nullif({{ json_text('payload', 'context.cookies._ttp') }}, '') as ttp,
        nullif({{ json_text('payload', 'context.cookies._ga') }}, '') as ga_cookie,
        {{ json_text('payload', 'context.consent.categoryPreferences.advertising') }} as advertising_consent_raw,
        {{ json_text('payload', 'traits.email') }} as trait_email,
        {{ json_text('payload', 'traits.phone') }} as trait_phone
    from source
),

with_params as (
    select
        *,
        {% for c in click_ids %}{{ url_param('page_url', c) }} as {{ c }},
        {% endfor %}
        {{ url_param('page_url', 'utm_source') }} as url_utm_source,
        {{ url_param('page_url', 'utm_medium') }} as url_utm_medium,
        {{ url_param('page_url', 'utm_campaign') }} as url_utm_campaign,
        {{ url_param('page_url', 'utm_content') }} as url_utm_content,
        {{ url_param('page_url', 'utm_term') }} as url_utm_term,
        {{ url_host('referrer') }} as referrer_host
    from parsed
),

final as (
    select
        message_id,
        event_type,
        event_name,
        anonymous_id,
        user_id,
        event_at,
        page_url,
        page_path,
        page_title,
        referrer,
        referrer_host,
        -- the URL is what the visitor clicked; the context is what an SDK remembered
        lower(coalesce(url_utm_source, context_utm_source)) as utm_source,
        lower(coalesce(url_utm_medium, context_utm_medium)) as utm_medium,
        coalesce(url_utm_campaign, context_utm_campaign) as utm_campaign,
        coalesce(url_utm_content, context_utm_content) as utm_content,
        coalesce(url_utm_term, context_utm_term) as utm_term,
        {% for c in click_ids %}{{ c }},
        {% endfor %}
        case
            {% for c in click_ids %}when {{ c }} is not null then '{{ c }}'
            {% endfor %}
        end as click_id_type,
        coalesce({{ click_ids | join(', ') }}) as click_id,
        user_agent,
        ip,
        locale,
        ttp,
        ga_cookie,
        -- only an explicit false is a denial; a missing flag is not consent data
        case lower(advertising_consent_raw) when 'false' then false when 'true' then true end as advertising_consent,
        trait_email,
        trait_phone,
        {{ normalise_email('trait_email') }} as email_normalised,
        {{ normalise_phone('trait_phone') }} as phone_normalised,
        event_type in ('identify', 'track') and (trait_email is not null or trait_phone is not null) as reveals_identity,
        event_type = 'track' and lower(event_name) in ('lead', 'form submitted', 'submitform', 'sign up', 'signed up')
            as is_lead
    from with_params
)

select * from final
