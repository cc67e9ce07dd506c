-- One row per event that is, or would be, sent to the TikTok Events API, with its match keys: every purchase
-- (event_id = the purchase's Stripe object id, so the same money can never be sent under two ids: for the first
-- invoice of a subscription bought through Checkout, the Checkout Session's id, which the success page knows too
-- ({CHECKOUT_SESSION_ID}), so the browser pixel's Purchase and ours are one event to TikTok; unless the delivery
-- ledger already holds the invoice's id from a real attempt, which then stays the event's id for good; payments held
-- back in int_standalone_payment_intents are no purchase yet, so nothing is sent for them) and, when
-- var tiktok_send_leads is true, every tracked lead form (event_id = the tracking messageId).
--
-- Incremental: an event's row depends on the event and on its customer: the identifiers stitched to them (match
-- keys), their used edges, and their browsers' tracking (context, _ttp, consent, and the touches that carry the
-- ttclid). Each row keeps a fingerprint of the event's own columns (`inputs_fingerprint`); a run builds the row
-- again for the events whose fingerprint is new or changed and for those of the customers whose inputs were
-- written since this model's last build (by the stamps of those rows: `changed_customers`; comparing fingerprints
-- of every customer's inputs read the whole tracking history in every run), and replaces theirs (delete+insert by
-- event id). Purchases that are no longer
-- sent are deleted after the run (post-hook). The orchestration rebuilds in full when the project changes.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='event_id',
          on_schema_change='fail',
          post_hook=["delete from {{ this }} as built where built.purchase_id is not null and not exists (
                         select 1 from {{ ref('attributed_purchases') }} as attributed
                         join {{ ref('int_purchases') }} as int_purchases using (purchase_id)
                         where attributed.purchase_id = built.purchase_id)",
                     "delete from {{ this }} where event_id = purchase_id and purchase_id in (
                         select purchase_id from {{ this }} where event_id <> purchase_id)"]) }}
with attributed as (
    select * from {{ ref('attributed_purchases') }}
),

int_purchases as (
    -- name and address: the purchase's own Stripe identity only, never another stitched identity's
    select purchase_id, stripe_customer_id, client_reference_id, customer_name, address_city, address_state,
           address_country, address_postal_code, billing_reason
    from {{ ref('int_purchases') }}
),

-- the Checkout Session that created an invoice (a subscription's first), whose id the success page has
checkout_invoices as (
    select invoice_id, min(checkout_session_id) as checkout_session_id
    from {{ ref('stg_stripe__checkout_sessions') }}
    where invoice_id is not null
    group by invoice_id
),

-- ids the delivery ledger holds from an attempt to send (written by reverse_etl, created with the raw tables by the
-- loader; not a dbt source: it is the delivery asset's own table, downstream of this model). A dry run sent nothing,
-- so it does not hold an id.
ledger as (
    select event_id from reverse_etl.tiktok_deliveries
    where status <> 'dry_run'
),

purchase_events as (
    select
        case when checkout_invoices.checkout_session_id is not null and ledger.event_id is null
             then checkout_invoices.checkout_session_id else attributed.purchase_id end as event_id,
        '{{ var("tiktok_event_name") }}' as event_name,
        attributed.purchased_at as event_time,
        attributed.purchase_id,
        attributed.customer_id,
        attributed.amount as value,
        attributed.currency,
        attributed.is_first_purchase,
        attributed.is_renewal,
        attributed.attributed_to_tiktok,
        attributed.first_touch_landing_page as page_url,
        int_purchases.customer_name,
        int_purchases.address_city,
        int_purchases.address_state,
        int_purchases.address_country,
        int_purchases.address_postal_code,
        -- whose emails and phones the event may carry (match_keys): verified identities only
        int_purchases.stripe_customer_id as key_stripe_customer_id,
        int_purchases.client_reference_id as key_browser,
        -- a subscription's first invoice whose Checkout Session has not landed (Stripe does not order its events):
        -- if it came through Checkout, the pixel fired under the session's id, so the delivery waits a little for
        -- the session before sending it under the invoice's (TIKTOK_CHECKOUT_SESSION_WAIT_SECONDS)
        coalesce(int_purchases.billing_reason = 'subscription_create', false)
            and checkout_invoices.checkout_session_id is null and ledger.event_id is null as awaits_checkout_session
    from attributed
    join int_purchases on int_purchases.purchase_id = attributed.purchase_id
    left join checkout_invoices on checkout_invoices.invoice_id = attributed.purchase_id
    left join ledger on ledger.event_id = attributed.purchase_id
),

{% if var('tiktok_send_leads') %}
lead_events as (
    select
        leads.message_id as event_id,
        '{{ var("tiktok_lead_event_name") }}' as event_name,
        leads.event_at as event_time,
        cast(null as varchar) as purchase_id,
        identities.customer_id,
        cast(null as decimal(18, 3)) as value,
        cast(null as varchar) as currency,
        cast(null as boolean) as is_first_purchase,
        cast(null as boolean) as is_renewal,
        cast(null as boolean) as attributed_to_tiktok,
        leads.page_url,
        cast(null as varchar) as customer_name,
        cast(null as varchar) as address_city,
        cast(null as varchar) as address_state,
        cast(null as varchar) as address_country,
        cast(null as varchar) as address_postal_code,
        cast(null as varchar) as key_stripe_customer_id,
        leads.anonymous_id as key_browser,
        false as awaits_checkout_session
    from {{ ref('stg_tracking__events') }} as leads
    join {{ ref('int_identity_components') }} as identities
        on identities.node_type = 'browser' and identities.node_value = leads.anonymous_id
    where leads.is_lead
),
{% endif %}

all_events as (
    select * from purchase_events
    {% if var('tiktok_send_leads') %}
    union all
    select * from lead_events
    {% endif %}
),

all_identities as (
    select * from {{ ref('int_identity_components') }}
),

{% if is_incremental() %}
-- The customers whose inputs changed since this model's last build, by the stamps of the rows they come from (a
-- stamp is the start of the dbt build that wrote the row; what this model's last build saw is stamped at most
-- `since`): identifiers stitched again (a merge, a split, a new identifier, an edge that came or went), edges of
-- theirs that changed (is_used, when first claimed, verified), browsers with new tracking (context, _ttp, consent),
-- and journeys built again (the ttclid).
{%- set since = stamps_since() %}
changed_nodes as (
    select left_node as node from {{ ref('int_identity_edges') }} where changed_at > {{ since }}
    union
    select right_node from {{ ref('int_identity_edges') }} where changed_at > {{ since }}
    union
    select 'browser:' || anonymous_id from {{ ref('stg_tracking__events') }}
    where built_at > {{ since }} and anonymous_id is not null
),

changed_customers as (
    select customer_id from {{ ref('int_identity_components') }} where built_at > {{ since }}
    union
    select identities.customer_id from {{ ref('int_identity_components') }} as identities
    join changed_nodes using (node)
    union
    select customer_id from {{ ref('customer_journeys') }} where built_at > {{ since }}
),
{% endif %}

-- what decides an event's row apart from its customer's inputs above: its own columns
fingerprinted as (
    select
        all_events.*,
        {{ fingerprint(['all_events.event_id', 'all_events.event_name', 'all_events.event_time',
                        'all_events.purchase_id', 'all_events.customer_id', 'all_events.value', 'all_events.currency',
                        'all_events.is_first_purchase', 'all_events.is_renewal', 'all_events.attributed_to_tiktok',
                        'all_events.page_url', 'all_events.customer_name', 'all_events.address_city',
                        'all_events.address_state', 'all_events.address_country', 'all_events.address_postal_code',
                        'all_events.key_stripe_customer_id', 'all_events.key_browser',
                        'all_events.awaits_checkout_session']) }}
            as inputs_fingerprint
    from all_events
),

-- the events to build: all of them, or in an incremental run those whose inputs are new or changed
purchases as (
    select * from fingerprinted
    {{ where_inputs_changed('fingerprinted', 'event_id',
                            'fingerprinted.customer_id in (select customer_id from changed_customers)') }}
),

identities as (
    select * from all_identities
    where customer_id in (select customer_id from purchases)
),

-- consent is the person's (any browser); the context columns are numbered for the two chosen events of each
-- conversion only (numbering wide rows sorts all of their text), read from here: joining the chosen events back to
-- the tracking history by message id read those columns of every event ever tracked
{% if is_incremental() -%}
-- the events of the customers built again, fetched by row id (rows_where) and kept apart (materialized: planned with
-- the join to their identities, DuckDB read the text columns of every event in history to filter them)
tracked as materialized (
    select anonymous_id, message_id, event_at, ttp, advertising_consent, ip, user_agent, locale
    from {{ ref('stg_tracking__events') }}
    where {{ rows_where('rowid', ref('stg_tracking__events'),
                        "anonymous_id in (select node_value from identities where node_type = 'browser')") }}
),

{% endif -%}
browser_events as {{ materialized_cte() }} (
    select identities.customer_id, events.anonymous_id, events.message_id, events.event_at, events.ttp,
           events.advertising_consent, events.ip is not null or events.user_agent is not null as has_context,
           events.ip, events.user_agent, events.locale
    from {% if is_incremental() %}tracked{% else %}{{ ref('stg_tracking__events') }}{% endif %} as events
    join identities on identities.node_type = 'browser' and identities.node_value = events.anonymous_id
),

-- The emails and phones an event carries: those its purchase names, those its Stripe customer holds, and those
-- typed in the browser it verifiably comes from (Checkout's client_reference_id; a lead's own browser), over the
-- edges the stitch uses (blocked and capped identifiers excluded). Never the rest of the stitched person: an
-- identify is a claim anyone with the public write key can make, and a merge is not a licence to send one
-- customer's keys with another's purchase.
-- (each event's nodes joined to the edges once: the used key edges of all history, materialized for three joins,
-- were most of an increment's time here)
event_nodes as (
    select event_id, 'purchase:' || purchase_id as node from purchases where purchase_id is not null
    union all
    select event_id, 'stripe_customer:' || key_stripe_customer_id from purchases where key_stripe_customer_id is not null
    union all
    select event_id, 'browser:' || key_browser from purchases where key_browser is not null
),

event_keys as (
    select distinct event_nodes.event_id, edges.right_type,
           substr(edges.right_node, strpos(edges.right_node, ':') + 1) as right_value
    from event_nodes
    join {{ ref('int_identity_edges') }} as edges on edges.left_node = event_nodes.node
    where edges.is_used and edges.right_type in ('email', 'phone')
      and edges.left_type in ('purchase', 'stripe_customer', 'browser')
),

match_keys as (
    select
        event_id,
        string_agg(case when right_type = 'email' then right_value end, ',' order by right_value) as emails,
        string_agg(case when right_type = 'phone' then right_value end, ',' order by right_value) as phones
    from event_keys
    group by event_id
),

-- The buyer's own browsers, from which the event's ttclid, _ttp, IP and user agent come, in order of trust:
-- verified (trust 0: the browser the event comes from, the browsers of its Stripe customer's Checkouts, those a
-- server write key linked to one of the event's own emails or phones), then the browsers that claimed one of them
-- under the public key (trust 1), directly or through a user id, the earliest claim first. A claim is what anyone with the public write key can make: it may add its sender's
-- browser, but never outrank a verified browser or an earlier claimant (a later purchase of a customer whose email
-- someone else typed keeps the customer's own click and device). Other browsers of the stitched person (another
-- Stripe customer's, one merged through a shared phone) give nothing.
claimed_browsers as (
    select edges.right_node as key_node, substr(edges.left_node, 9) as anonymous_id, edges.first_claimed_at,
           edges.is_verified
    from {{ ref('int_identity_edges') }} as edges
    where edges.is_used and edges.left_type = 'browser' and edges.right_type in ('email', 'phone')
    union all
    select user_keys.right_node, substr(browser_users.left_node, 9),
           greatest(browser_users.first_claimed_at, user_keys.first_claimed_at),
           browser_users.is_verified and user_keys.is_verified
    from {{ ref('int_identity_edges') }} as user_keys
    join {{ ref('int_identity_edges') }} as browser_users
        on browser_users.right_node = user_keys.left_node and browser_users.is_used
       and browser_users.left_type = 'browser'
    where user_keys.is_used and user_keys.left_type = 'user' and user_keys.right_type in ('email', 'phone')
),

own_browser_candidates as (
    select event_id, key_browser as anonymous_id, 0 as trust, cast(null as timestamp) as claimed_at
    from purchases where key_browser is not null
    union all
    select purchases.event_id, substr(edges.left_node, 9), 0, cast(null as timestamp)
    from purchases
    join {{ ref('int_identity_edges') }} as edges
        on edges.right_node = 'stripe_customer:' || purchases.key_stripe_customer_id
       and edges.is_used and edges.left_type = 'browser'
    union all
    select event_keys.event_id, claimed_browsers.anonymous_id, case when claimed_browsers.is_verified then 0 else 1 end,
           case when not claimed_browsers.is_verified then claimed_browsers.first_claimed_at end
    from event_keys
    join claimed_browsers on claimed_browsers.key_node = event_keys.right_type || ':' || event_keys.right_value
),

own_browsers as (
    select event_id, anonymous_id, min(trust) as trust, min(claimed_at) as claimed_at
    from own_browser_candidates
    group by event_id, anonymous_id
),

-- the trusted-most browser's newest context (ip, user agent, locale) tracked at or before the event (a message
-- from the shop's backend may name none), and the newest _ttp cookie (the newest event may come from a browser
-- that blocks the pixel)
ranked_context as (
    select
        purchases.event_id,
        browser_events.message_id,
        row_number() over (partition by purchases.event_id
                           order by own_browsers.trust, own_browsers.claimed_at nulls first,
                                    case when browser_events.has_context then 0 else 1 end,
                                    browser_events.event_at desc, browser_events.message_id desc) as recency,
        row_number() over (partition by purchases.event_id
                           order by case when browser_events.ttp is null then 1 else 0 end,
                                    own_browsers.trust, own_browsers.claimed_at nulls first,
                                    browser_events.event_at desc, browser_events.message_id desc) as ttp_recency
    from purchases
    join own_browsers on own_browsers.event_id = purchases.event_id
    join browser_events
        on browser_events.customer_id = purchases.customer_id
       and browser_events.anonymous_id = own_browsers.anonymous_id
       and browser_events.event_at <= purchases.event_time
),

context_before as (
    select
        ranked_context.event_id,
        ranked_context.recency,
        ranked_context.ttp_recency,
        events.ttp,
        events.ip,
        events.user_agent,
        events.locale
    from ranked_context
    join browser_events as events on events.message_id = ranked_context.message_id
    where ranked_context.recency = 1 or ranked_context.ttp_recency = 1
),

ttclid_before as (
    select purchases.event_id, journeys.ttclid,
           row_number() over (partition by purchases.event_id
                              order by own_browsers.trust, own_browsers.claimed_at nulls first,
                                       journeys.touched_at desc, journeys.touch_id desc) as recency
    from purchases
    join own_browsers on own_browsers.event_id = purchases.event_id
    join {{ ref('customer_journeys') }} as journeys
        on journeys.customer_id = purchases.customer_id
       and journeys.anonymous_id = own_browsers.anonymous_id
       and journeys.touched_at <= purchases.event_time
       and journeys.ttclid is not null
),

-- consent: a denial anywhere in the person wins, whenever it was given; nothing is sent to an ad platform for
-- them. (A browser's consent flag is a claim: a grant must never outrank a denial, and the latest signal by the
-- browser's own clock was what a forged, future-dated grant could win.)
consent as (
    select customer_id, bool_and(advertising_consent) as advertising_consent
    from browser_events
    where advertising_consent is not null
    group by customer_id
),

joined as (
    select
        purchases.*,
        ttclid_before.ttclid,
        ttp_before.ttp,
        match_keys.emails,
        match_keys.phones,
        context_before.ip,
        context_before.user_agent,
        context_before.locale,
        coalesce(consent.advertising_consent, true) as advertising_consent
    from purchases
    left join ttclid_before on ttclid_before.event_id = purchases.event_id and ttclid_before.recency = 1
    left join context_before as ttp_before on ttp_before.event_id = purchases.event_id and ttp_before.ttp_recency = 1
    left join context_before on context_before.event_id = purchases.event_id and context_before.recency = 1
    left join consent on consent.customer_id = purchases.customer_id
    left join match_keys on match_keys.event_id = purchases.event_id
),

final as (
    select
        *,
        ttclid is not null as has_ttclid,
        emails is not null as has_email,
        phones is not null as has_phone,
        ttp is not null as has_ttp,
        nullif(trim(customer_name), '') is not null as has_name,
        coalesce(address_postal_code, address_city, address_state, address_country) is not null as has_address,
        case
            when not advertising_consent then 'no_consent'
            when purchase_id is not null and value <= 0 then 'zero_value'
            when ttclid is null and emails is null and phones is null and ttp is null then 'no_match_key'
        end as ineligible_reason
    from joined
)

select
    *,
    ineligible_reason is null as eligible,
    {{ build_stamp() }} as built_at
from final
