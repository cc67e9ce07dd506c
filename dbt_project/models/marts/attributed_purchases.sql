-- One row per purchase (never the same money twice), with the stitched customer and the first touch
-- that brought them: the first touch gets all of the customer's later revenue, renewals included.
with purchases as (
    select * from {{ ref('int_purchases') }}
),

identities as (
    select node_value as purchase_id, customer_id
    from {{ ref('int_identity_components') }}
    where node_type = 'purchase'
),

journeys as (
    select * from {{ ref('customer_journeys') }}
),

purchases_with_customer as (
    select purchases.*, identities.customer_id
    from purchases
    join identities on identities.purchase_id = purchases.purchase_id
),

touches_before as (
    select
        purchases_with_customer.purchase_id,
        journeys.*,
        row_number() over (partition by purchases_with_customer.purchase_id
                           order by journeys.touch_index) as first_rank,
        row_number() over (partition by purchases_with_customer.purchase_id
                           order by journeys.touch_index desc) as last_rank
    from purchases_with_customer
    join journeys
        on journeys.customer_id = purchases_with_customer.customer_id
       and journeys.touched_at <= purchases_with_customer.purchased_at
),

final as (
    select
        p.purchase_id,
        p.purchase_type,
        p.stripe_customer_id,
        p.customer_id,
        p.purchased_at,
        p.amount,
        p.refunded_amount,
        p.net_amount,
        p.currency,
        p.subscription_id,
        p.is_renewal,
        row_number() over (partition by p.customer_id order by p.purchased_at, p.purchase_id) = 1 as is_first_purchase,
        ft.touch_id as first_touch_id,
        ft.touched_at as first_touch_at,
        ft.channel as first_touch_channel,
        ft.source as first_touch_source,
        ft.medium as first_touch_medium,
        ft.campaign as first_touch_campaign,
        ft.ad as first_touch_ad,
        ft.click_id_type as first_touch_click_id_type,
        ft.ttclid as first_touch_ttclid,
        ft.url as first_touch_landing_page,
        ft.anonymous_id as first_touch_anonymous_id,
        lt.touched_at as last_touch_at,
        lt.channel as last_touch_channel,
        lt.campaign as last_touch_campaign,
        coalesce(ft.channel = 'TikTok Ads', false) as attributed_to_tiktok
    from purchases_with_customer as p
    left join touches_before as ft on ft.purchase_id = p.purchase_id and ft.first_rank = 1
    left join touches_before as lt on lt.purchase_id = p.purchase_id and lt.last_rank = 1
)

select * from final
