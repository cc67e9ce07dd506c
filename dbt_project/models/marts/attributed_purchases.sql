-- One row per purchase (never the same money twice), with the stitched customer and the first touch
-- that brought them: the first touch gets all of the customer's later revenue, renewals included.
--
-- Incremental: a purchase's row depends only on its customer's purchases and journey, so a run builds again the
-- purchases of the customers that have a purchase new, changed (a refund, a later state) or moved to another
-- customer (before and after the move), or whose journey changed (its fingerprint, from customer_journeys, kept
-- in `journey_fingerprint`), and replaces theirs (delete+insert by purchase). The post-hook deletes the rows of
-- purchases that are no longer purchases.
{% set purchase_columns = ['purchase_type', 'stripe_customer_id', 'purchased_at', 'amount', 'refunded_amount',
                           'net_amount', 'currency', 'subscription_id', 'is_renewal'] %}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='purchase_id',
          on_schema_change='fail',
          post_hook="{% if is_incremental() %}
              delete from {{ this }} as built
              where not exists (select 1 from {{ ref('int_purchases') }} as p where p.purchase_id = built.purchase_id)
              {% endif %}") }}
with purchases as (
    select * from {{ ref('int_purchases') }}
),

identities as (
    select node_value as purchase_id, customer_id
    from {{ ref('int_identity_components') }}
    where node_type = 'purchase'
),

journey_versions as (
    select distinct customer_id, journey_fingerprint from {{ ref('customer_journeys') }}
),

all_purchases_with_customer as (
    select purchases.*, identities.customer_id, journey_versions.journey_fingerprint
    from purchases
    join identities on identities.purchase_id = purchases.purchase_id
    left join journey_versions on journey_versions.customer_id = identities.customer_id
),

{% if is_incremental() %}
built as (
    select * from {{ this }}
),

changed_customers as (
    select current.customer_id
    from all_purchases_with_customer as current
    left join built on built.purchase_id = current.purchase_id
    where built.purchase_id is null
       or built.customer_id is distinct from current.customer_id
       or built.journey_fingerprint is distinct from current.journey_fingerprint
       {%- for column in purchase_columns %}
       or built.{{ column }} is distinct from current.{{ column }}
       {%- endfor %}
    union
    select built.customer_id
    from built
    left join all_purchases_with_customer as current on current.purchase_id = built.purchase_id
    where current.purchase_id is null or current.customer_id is distinct from built.customer_id
),
{% endif %}

purchases_with_customer as (
    select * from all_purchases_with_customer
    {% if is_incremental() %}
    where customer_id in (select customer_id from changed_customers)
    {% endif %}
),

-- The first touch before a purchase is the customer's first touch, if it came before the purchase (touches are
-- numbered in time order); the last is the highest-numbered touch before it. An aggregate and two equality joins:
-- numbering every (purchase, earlier touch) pair twice over took most of this model's time. customer_journeys is
-- named in each join rather than in a CTE, which DuckDB would materialize.
last_touch_before as (
    select purchases_with_customer.purchase_id, max(journeys.touch_index) as touch_index
    from purchases_with_customer
    join {{ ref('customer_journeys') }} as journeys
        on journeys.customer_id = purchases_with_customer.customer_id
       and journeys.touched_at <= purchases_with_customer.purchased_at
    group by purchases_with_customer.purchase_id
),

first_purchases as (
    select
        purchase_id,
        row_number() over (partition by customer_id order by purchased_at, purchase_id) = 1 as is_first_purchase
    from purchases_with_customer
),

final as (
    select
        p.purchase_id,
        p.purchase_type,
        p.stripe_customer_id,
        p.customer_id,
        p.purchased_at,
        cast(p.amount as decimal(18, 3)) as amount,
        cast(p.refunded_amount as decimal(38, 3)) as refunded_amount,
        cast(p.net_amount as decimal(38, 3)) as net_amount,
        p.currency,
        p.subscription_id,
        p.is_renewal,
        first_purchases.is_first_purchase,
        ft.touch_id as first_touch_id,
        ft.touched_at as first_touch_at,
        ft.channel as first_touch_channel,
        ft.source as first_touch_source,
        ft.medium as first_touch_medium,
        ft.campaign as first_touch_campaign,
        ft.ad as first_touch_ad,
        ft.tiktok_campaign_id as first_touch_tiktok_campaign_id,
        ft.tiktok_adgroup_id as first_touch_tiktok_adgroup_id,
        ft.tiktok_ad_id as first_touch_tiktok_ad_id,
        ft.click_id_type as first_touch_click_id_type,
        ft.ttclid as first_touch_ttclid,
        ft.url as first_touch_landing_page,
        ft.anonymous_id as first_touch_anonymous_id,
        lt.touched_at as last_touch_at,
        lt.channel as last_touch_channel,
        lt.campaign as last_touch_campaign,
        coalesce(ft.channel = 'TikTok Ads', false) as attributed_to_tiktok,
        p.journey_fingerprint
    from purchases_with_customer as p
    join first_purchases on first_purchases.purchase_id = p.purchase_id
    left join last_touch_before on last_touch_before.purchase_id = p.purchase_id
    left join {{ ref('customer_journeys') }} as ft
        on ft.customer_id = p.customer_id and ft.touch_index = 1 and ft.touched_at <= p.purchased_at
    left join {{ ref('customer_journeys') }} as lt
        on lt.customer_id = p.customer_id and lt.touch_index = last_touch_before.touch_index
)

select *, {{ build_stamp() }} as built_at from final
