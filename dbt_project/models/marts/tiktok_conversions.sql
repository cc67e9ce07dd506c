-- One row per purchase event that is, or would be, sent to the TikTok Events API, with its match keys.
-- event_id is the purchase's Stripe object id, so the same purchase can never be sent under two ids.
with purchases as (
    select * from {{ ref('attributed_purchases') }}
),

int_purchases as (
    select purchase_id, is_settled from {{ ref('int_purchases') }}
),

identities as (
    select * from {{ ref('int_identity_components') }}
),

browser_events as (
    select identities.customer_id, events.*
    from {{ ref('stg_tracking__events') }} as events
    join identities on identities.node_type = 'browser' and identities.node_value = events.anonymous_id
),

-- the newest browser context (cookie, ip, user agent, locale) tracked at or before the purchase
context_before as (
    select
        purchases.purchase_id,
        browser_events.ttp,
        browser_events.ip,
        browser_events.user_agent,
        browser_events.locale,
        row_number() over (partition by purchases.purchase_id
                           order by browser_events.event_at desc, browser_events.message_id desc) as recency
    from purchases
    join browser_events
        on browser_events.customer_id = purchases.customer_id
       and browser_events.event_at <= purchases.purchased_at
),

ttp_before as (
    select purchases.purchase_id, browser_events.ttp,
           row_number() over (partition by purchases.purchase_id
                              order by browser_events.event_at desc, browser_events.message_id desc) as recency
    from purchases
    join browser_events
        on browser_events.customer_id = purchases.customer_id
       and browser_events.event_at <= purchases.purchased_at
       and browser_events.ttp is not null
),

ttclid_before as (
    select purchases.purchase_id, journeys.ttclid,
           row_number() over (partition by purchases.purchase_id
                              order by journeys.touched_at desc, journeys.touch_id desc) as recency
    from purchases
    join {{ ref('customer_journeys') }} as journeys
        on journeys.customer_id = purchases.customer_id
       and journeys.touched_at <= purchases.purchased_at
       and journeys.ttclid is not null
),

-- the customer's latest consent signal; an explicit denial means nothing is sent to an ad platform
consent as (
    select customer_id, advertising_consent,
           row_number() over (partition by customer_id order by event_at desc, message_id desc) as recency
    from browser_events
    where advertising_consent is not null
),

match_keys as (
    select
        customer_id,
        string_agg(case when node_type = 'email' then node_value end, ',' order by node_value) as emails,
        string_agg(case when node_type = 'phone' then node_value end, ',' order by node_value) as phones
    from identities
    where node_type in ('email', 'phone')
    group by customer_id
),

joined as (
    select
        purchases.purchase_id as event_id,
        '{{ var("tiktok_event_name") }}' as event_name,
        purchases.purchased_at as event_time,
        purchases.purchase_id,
        purchases.customer_id,
        purchases.amount as value,
        purchases.currency,
        purchases.is_first_purchase,
        purchases.is_renewal,
        purchases.attributed_to_tiktok,
        purchases.first_touch_landing_page as page_url,
        ttclid_before.ttclid,
        ttp_before.ttp,
        match_keys.emails,
        match_keys.phones,
        context_before.ip,
        context_before.user_agent,
        context_before.locale,
        coalesce(consent.advertising_consent, true) as advertising_consent,
        int_purchases.is_settled
    from purchases
    join int_purchases on int_purchases.purchase_id = purchases.purchase_id
    left join ttclid_before on ttclid_before.purchase_id = purchases.purchase_id and ttclid_before.recency = 1
    left join ttp_before on ttp_before.purchase_id = purchases.purchase_id and ttp_before.recency = 1
    left join context_before on context_before.purchase_id = purchases.purchase_id and context_before.recency = 1
    left join consent on consent.customer_id = purchases.customer_id and consent.recency = 1
    left join match_keys on match_keys.customer_id = purchases.customer_id
),

final as (
    select
        *,
        ttclid is not null as has_ttclid,
        emails is not null as has_email,
        phones is not null as has_phone,
        ttp is not null as has_ttp,
        case
            when not advertising_consent then 'no_consent'
            when not is_settled then 'awaiting_settlement'
            when value <= 0 then 'zero_value'
            when ttclid is null and emails is null and phones is null and ttp is null then 'no_match_key'
        end as ineligible_reason
    from joined
)

select
    *,
    ineligible_reason is null as eligible
from final
