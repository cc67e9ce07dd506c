-- One row per tracking event (page, identify, track) with the page URL parsed: UTM parameters,
-- click ids, referrer host and its kind (search engine, social network: seed referrer_hosts), the _ttp cookie,
-- consent, the identity traits, the touch the tracker remembered from the landing page (context.attribution,
-- carried_*), and bots flagged by their user agent (seed bot_user_agents).
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
        {{ json_text('payload', 'traits.phone') }} as trait_phone,
        -- what the browser tracker remembered from the landing page and sends with every later event
        {% for c in click_ids %}{{ json_text('payload', 'context.attribution.clickIds.' ~ c) }} as carried_{{ c }},
        {% endfor %}
        {{ json_text('payload', 'context.attribution.campaign.source') }} as carried_utm_source,
        {{ json_text('payload', 'context.attribution.campaign.medium') }} as carried_utm_medium,
        {{ json_text('payload', 'context.attribution.campaign.name') }} as carried_utm_campaign,
        {{ json_text('payload', 'context.attribution.landingUrl') }} as carried_landing_url
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

referrer_kinds as (
    -- the most specific listed host that the referrer host is, or is a subdomain of
    select
        with_params.message_id,
        referrer_hosts.medium,
        referrer_hosts.source,
        row_number() over (partition by with_params.message_id order by length(referrer_hosts.host) desc) as match_rank
    from with_params
    join {{ ref('referrer_hosts') }} as referrer_hosts
        on with_params.referrer_host = referrer_hosts.host
        or with_params.referrer_host like '%.' || referrer_hosts.host
),

bots as (
    select distinct with_params.message_id
    from with_params
    join {{ ref('bot_user_agents') }} as bot_user_agents
        on {{ regex_matches('lower(with_params.user_agent)', 'bot_user_agents.pattern') }}
),

final as (
    select
        with_params.message_id,
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
        referrer_kinds.medium as referrer_medium,
        referrer_kinds.source as referrer_source,
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
            as is_lead,
        case
            {% for c in click_ids %}when carried_{{ c }} is not null then '{{ c }}'
            {% endfor %}
        end as carried_click_id_type,
        coalesce({% for c in click_ids %}carried_{{ c }}{% if not loop.last %}, {% endif %}{% endfor %}) as carried_click_id,
        carried_ttclid,
        lower(carried_utm_source) as carried_utm_source,
        lower(carried_utm_medium) as carried_utm_medium,
        carried_utm_campaign,
        carried_landing_url,
        bots.message_id is not null as is_bot
    from with_params
    left join referrer_kinds on referrer_kinds.message_id = with_params.message_id and referrer_kinds.match_rank = 1
    left join bots on bots.message_id = with_params.message_id
)

select * from final
