-- One row per tracking event (page, identify, track) with the page URL parsed: UTM parameters,
-- click ids, referrer host and its kind (search engine, social network: seed referrer_hosts), the _ttp cookie,
-- consent, the identity traits, the touch the tracker remembered from the landing page (context.attribution,
-- carried_*), and bots flagged by their user agent (seed bot_user_agents).
--
-- Incremental: a run adds the raw events it has not staged yet (raw rows are unique by message_id and never
-- change), so its cost follows the new data. Everything here is per event, so appending gives the same table as
-- a rebuild; the orchestration rebuilds it in full whenever the dbt project changes (a seed edit included).
-- On PostgreSQL, an index on `built_at`: the models that take the browsers with events staged since their last
-- build read those rows by it (DuckDB skips the older row groups by their min/max without one).
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail',
          indexes=[{'columns': ['built_at']}] if target.type == 'postgres' else []) }}
{% set tiktok_id_levels = ['campaign', 'adgroup', 'ad'] %}
{% set click_ids = ['ttclid', 'gclid', 'gbraid', 'wbraid', 'dclid', 'fbclid', 'msclkid', 'li_fat_id', 'twclid'] %}
with source as (
    select message_id, type, event_name, anonymous_id, user_id, event_timestamp, payload, _loaded_at
    from {{ source('tracking', 'tracking_events') }} as raw_events
    {% if is_incremental() %}
    -- the loads not staged yet (a load committed late with an earlier clock included), named as constants
    where {{ unstaged_loads(source('tracking', 'tracking_events')) }}
    {% endif %}
),

{#- every field read from the payload, parsed once per event (json_texts) -#}
{%- set fields = [
    ('url', 'context.page.url'), ('props_url', 'properties.url'),
    ('path', 'context.page.path'), ('props_path', 'properties.path'),
    ('title', 'context.page.title'), ('props_title', 'properties.title'),
    ('referrer', 'context.page.referrer'), ('props_referrer', 'properties.referrer'),
    ('context_utm_source', 'context.campaign.source'), ('context_utm_medium', 'context.campaign.medium'),
    ('context_utm_campaign', 'context.campaign.name'), ('context_utm_content', 'context.campaign.content'),
    ('context_utm_term', 'context.campaign.term'),
    ('user_agent', 'context.userAgent'), ('ip', 'context.ip'), ('locale', 'context.locale'),
    ('ttp', 'context.cookies._ttp'), ('ga_cookie', 'context.cookies._ga'),
    ('advertising_consent_raw', 'context.consent.categoryPreferences.advertising'), ('received_at', 'receivedAt'),
    ('received_via', 'receivedVia'),
    ('trait_email', 'traits.email'), ('trait_phone', 'traits.phone'),
    ('carried_utm_source', 'context.attribution.campaign.source'),
    ('carried_utm_medium', 'context.attribution.campaign.medium'),
    ('carried_utm_campaign', 'context.attribution.campaign.name'),
    ('carried_landing_url', 'context.attribution.landingUrl'),
] -%}
{%- for c in click_ids %}{% do fields.append(('carried_' ~ c, 'context.attribution.clickIds.' ~ c)) %}{% endfor -%}
{%- set at = json_text_refs(fields | map(attribute=0) | list) %}

extracted as (
    select
        message_id, type, event_name, anonymous_id, user_id, event_timestamp, _loaded_at,
        {{ json_texts('payload', fields | map(attribute=1) | list) }} as f
    from source
    {{ kept_apart() }}
),

parsed as (
    select
        message_id,
        type as event_type,
        event_name,
        anonymous_id,
        user_id,
        event_timestamp as client_event_at,
        {{ iso_to_timestamp(at.received_at) }} as received_at,
        -- the collector's word (it overwrites whatever a client sent): a message under a server write key is
        -- verified; under the public browser key, or not through the collector, a claim
        coalesce({{ at.received_via }} = 'server_key', false) as is_verified,
        _loaded_at as loaded_at,
        coalesce({{ at.url }}, {{ at.props_url }}) as page_url,
        coalesce({{ at.path }}, {{ at.props_path }}) as page_path,
        coalesce({{ at.title }}, {{ at.props_title }}) as page_title,
        nullif(coalesce({{ at.referrer }}, {{ at.props_referrer }}), '') as referrer,
        {% for name in ['context_utm_source', 'context_utm_medium', 'context_utm_campaign', 'context_utm_content',
                        'context_utm_term', 'user_agent', 'ip', 'locale'] %}{{ at[name] }} as {{ name }},
        {% endfor %}
        nullif({{ at.ttp }}, '') as ttp,
        nullif({{ at.ga_cookie }}, '') as ga_cookie,
        {{ at.advertising_consent_raw }} as advertising_consent_raw,
        {{ at.trait_email }} as trait_email,
        {{ at.trait_phone }} as trait_phone,
        -- what the browser tracker remembered from the landing page and sends with every later event
        {% for c in click_ids %}{{ at['carried_' ~ c] }} as carried_{{ c }},
        {% endfor %}
        {{ at.carried_utm_source }} as carried_utm_source,
        {{ at.carried_utm_medium }} as carried_utm_medium,
        {{ at.carried_utm_campaign }} as carried_utm_campaign,
        {{ at.carried_landing_url }} as carried_landing_url
    from extracted
    {{ kept_apart() }}
),

with_params as (
    select
        *,
        -- the client's clock is a claim: used clamped to a window around the time the collector received the event
        -- (lines without receivedAt did not come through the collector and keep their time); the raw value is kept
        -- (a step after received_at is parsed, so that it is parsed once)
        case when received_at is null then client_event_at
             else least(greatest(client_event_at, received_at - interval '{{ var("client_clock_max_lag_hours") }} hours'),
                        received_at + interval '{{ var("client_clock_max_lead_minutes") }} minutes') end as event_at,
        {% for c in click_ids %}{{ url_param('page_url', c) }} as {{ c }},
        {% endfor %}
        {{ url_param('page_url', 'utm_source') }} as url_utm_source,
        {{ url_param('page_url', 'utm_medium') }} as url_utm_medium,
        {{ url_param('page_url', 'utm_campaign') }} as url_utm_campaign,
        {{ url_param('page_url', 'utm_content') }} as url_utm_content,
        {{ url_param('page_url', 'utm_term') }} as url_utm_term,
        {#- TikTok's ids from the URL macros the tracking guide recommends (__CAMPAIGN_ID__, __AID__, __CID__) #}
        {%- for level in tiktok_id_levels %}
        (case when strpos(page_url, 'tt_{{ level }}_id=') > 0 then {{ url_param('page_url', 'tt_' ~ level ~ '_id') }} end)
            as url_tiktok_{{ level }}_id,
        {%- endfor %}
        {{ url_host('referrer') }} as referrer_host
    from parsed
    {{ kept_apart() }}
),

{#- the two small seeds written in as constants (macro seed_rows): matched per event without a join, so the events
    are computed once and never held in memory whole (a join per distinct value needed them materialized) #}
{%- set bot_patterns = seed_rows('bot_user_agents', ['pattern']) %}
{%- set listed_hosts = seed_rows('referrer_hosts', ['host']) %}
{#- PostgreSQL's regular expressions take microseconds a row over the patterns' long alternation (11 s for 1M
    events): there each distinct user agent is matched once, and the events join the answer #}
{%- set bots_per_agent = target.type == 'postgres' and bot_patterns %}
{%- if bots_per_agent %}
bot_agents as {{ materialized_cte() }} (
    select user_agent,
           coalesce({{ regex_matches('lower(user_agent)',
                                     literal('(' ~ bot_patterns | map(attribute=0) | join(')|(') ~ ')')) }}, false)
               as is_bot
    from (select distinct user_agent from with_params where user_agent is not null) as agents
),
{%- endif %}
classified as (
    select
        with_params.*,
        -- bots: the user agent matches any pattern of seed bot_user_agents
        {%- if bots_per_agent %}
        coalesce(bot_agents.is_bot, false)
        {%- elif bot_patterns is none %}
        exists (select 1 from {{ ref('bot_user_agents') }} as bot_user_agents
                where {{ regex_matches('lower(with_params.user_agent)', 'bot_user_agents.pattern') }})
        {%- elif bot_patterns %}
        coalesce({{ regex_matches('lower(user_agent)',
                                  literal('(' ~ bot_patterns | map(attribute=0) | join(')|(') ~ ')')) }}, false)
        {%- else %}
        false
        {%- endif %} as is_bot,
        -- the most specific listed host that the referrer host is, or is a subdomain of
        {%- if listed_hosts is none %}
        (select referrer_hosts.host from {{ ref('referrer_hosts') }} as referrer_hosts
         where with_params.referrer_host = referrer_hosts.host
            or with_params.referrer_host like '%.' || referrer_hosts.host
         order by length(referrer_hosts.host) desc, referrer_hosts.host limit 1)
        {%- elif listed_hosts %}
        {%- set hosts = listed_hosts | map(attribute=0) | list %}
        case
            {%- for n in range(hosts | map('length') | max, 0, -1) %}{% for host in hosts if host | length == n %}
            when referrer_host = {{ literal(host) }} or right(referrer_host, {{ n + 1 }}) = {{ literal('.' ~ host) }}
                then {{ literal(host) }}
            {%- endfor %}{% endfor %}
        end
        {%- else %}
        cast(null as varchar)
        {%- endif %} as referrer_listed_host
    from with_params
    {%- if bots_per_agent %}
    left join bot_agents on bot_agents.user_agent = with_params.user_agent
    {%- endif %}
    {{ kept_apart() }}
),

final as (
    select
        classified.message_id,
        event_type,
        event_name,
        anonymous_id,
        user_id,
        event_at,
        client_event_at,
        received_at,
        is_verified,
        page_url,
        page_path,
        page_title,
        referrer,
        classified.referrer_host,
        referrer_hosts.medium as referrer_medium,
        referrer_hosts.source as referrer_source,
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
        {#- TikTok's ids are numbers: anything else in the parameter (an unexpanded macro, a forged value) is no id #}
        {%- for level in tiktok_id_levels %}
        case when {{ regex_matches('url_tiktok_' ~ level ~ '_id', "'^[0-9]{1,25}$'") }} then url_tiktok_{{ level }}_id end
            as tiktok_{{ level }}_id,
        {%- endfor %}
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
        is_bot,
        loaded_at,
        {{ build_stamp() }} as built_at
    from classified
    left join {{ ref('referrer_hosts') }} as referrer_hosts on referrer_hosts.host = classified.referrer_listed_host
)

select * from final
