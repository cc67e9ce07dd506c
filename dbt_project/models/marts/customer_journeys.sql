-- One row per touch of a stitched customer, across all of the customer's browsers, in time order.
with touches as (
    select * from {{ ref('int_touches') }}
),

identities as (
    select node_value as anonymous_id, customer_id
    from {{ ref('int_identity_components') }}
    where node_type = 'browser'
),

final as (
    select
        identities.customer_id,
        row_number() over (partition by identities.customer_id
                           order by touches.touched_at, touches.touch_id) as touch_index,
        touches.touch_id,
        touches.touched_at,
        touches.anonymous_id,
        touches.channel,
        touches.source,
        touches.medium,
        touches.campaign,
        touches.ad,
        touches.click_id_type,
        touches.click_id,
        touches.ttclid,
        touches.url,
        touches.landing_path,
        touches.referrer
    from touches
    join identities on identities.anonymous_id = touches.anonymous_id
)

select * from final
