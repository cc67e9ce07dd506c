-- One row per touch of a stitched customer, across all of the customer's browsers, in time order.
--
-- Incremental: a customer's journey is decided by the touches of the browsers stitched to them only, so a run
-- builds again the journeys of the customers that gained or lost a touch or a browser, and replaces theirs
-- (delete+insert by customer). A browser changed when one of its touches is new or gone (int_touches replaces a
-- browser's touches when it has new pages) or when it now belongs to another customer (a merge or a split); its
-- customers before and after are both built again. A customer id that no longer exists (merged into another) has
-- no new rows to replace its old ones: the post-hook deletes every row whose browser is no longer that customer's.
-- Each row carries its customer's `journey_fingerprint` (of all the customer's touches, every column), by which the
-- models that read journeys tell whose journey changed without reading every journey.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='customer_id',
          on_schema_change='fail',
          post_hook="{% if is_incremental() %}
              delete from {{ this }} as built
              where not exists (
                  select 1 from {{ ref('int_identity_components') }} as identities
                  where identities.node_type = 'browser' and identities.node_value = built.anonymous_id
                    and identities.customer_id = built.customer_id)
              {% endif %}") }}
with touches as (
    select * from {{ ref('int_touches') }}
),

identities as (
    select node_value as anonymous_id, customer_id
    from {{ ref('int_identity_components') }}
    where node_type = 'browser'
),

{% if is_incremental() %}
built as (
    select distinct anonymous_id, customer_id from {{ this }}
),

-- (int_touches read here by name, not through `touches`: a CTE read twice is materialized, every column of every
-- touch in history, where these two need two columns)
changed_browsers as (
    select new_touches.anonymous_id from {{ ref('int_touches') }} as new_touches
    where not exists (select 1 from {{ this }} as built_touches where built_touches.touch_id = new_touches.touch_id)
    union
    select built_touches.anonymous_id from {{ this }} as built_touches
    where not exists (select 1 from {{ ref('int_touches') }} as new_touches
                      where new_touches.touch_id = built_touches.touch_id)
    union
    select built.anonymous_id from built
    left join identities on identities.anonymous_id = built.anonymous_id
    where identities.customer_id is distinct from built.customer_id
),

changed_customers as (
    select customer_id from identities where anonymous_id in (select anonymous_id from changed_browsers)
    union
    select customer_id from built where anonymous_id in (select anonymous_id from changed_browsers)
),
{% endif %}

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
        touches.tiktok_campaign_id,
        touches.tiktok_adgroup_id,
        touches.tiktok_ad_id,
        touches.click_id_type,
        touches.click_id,
        touches.ttclid,
        touches.url,
        touches.landing_path,
        touches.referrer,
        bit_xor({{ fingerprint(['touches.touch_id', 'touches.touched_at', 'touches.anonymous_id', 'touches.channel',
                                'touches.source', 'touches.medium', 'touches.campaign', 'touches.ad',
                                'touches.click_id_type', 'touches.click_id', 'touches.ttclid', 'touches.url',
                                'touches.landing_path', 'touches.referrer']) }})
            over (partition by identities.customer_id) as journey_fingerprint
    from touches
    join identities on identities.anonymous_id = touches.anonymous_id
    {% if is_incremental() %}
    where identities.customer_id in (select customer_id from changed_customers)
    {% endif %}
)

select *, {{ build_stamp() }} as built_at from final
