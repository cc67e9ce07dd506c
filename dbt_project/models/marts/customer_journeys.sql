-- One row per touch of a stitched customer, across all of the customer's browsers, in time order.
--
-- Incremental: a customer's journey is decided by the touches of the browsers stitched to them only, so a run
-- builds again the journeys of the customers that gained or lost a touch or a browser, and replaces theirs
-- (delete+insert by customer). A browser changed when its touches were built again (int_touches replaces a
-- browser's touches when it has new pages; a browser keeps at least the touch of its first page) or when the stitch
-- wrote it again (it now belongs to another customer: a merge or a split), both told by their stamps (`built_at`);
-- its customers before and after are both built again. A customer built again with no touch left (merged into
-- another, its browsers gone elsewhere) gets a row without a touch, so that delete+insert removes its old rows; the
-- post-hook deletes that row.
-- Each row carries its customer's `journey_fingerprint` (of all the customer's touches, every column), by which the
-- models that read journeys tell whose journey changed without reading every journey.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='customer_id',
          on_schema_change='fail',
          post_hook="{% if is_incremental() %}delete from {{ this }} where touch_id is null{% endif %}") }}
with touches as (
    select * from {{ ref('int_touches') }}
),

identities as (
    select node_value as anonymous_id, customer_id
    from {{ ref('int_identity_components') }}
    where node_type = 'browser'
),

{% if is_incremental() %}
{%- set since = stamps_since() %}
changed_browsers as (
    select anonymous_id from {{ ref('int_touches') }} where built_at > {{ since }}
    union
    select node_value from {{ ref('int_identity_components') }}
    where node_type = 'browser' and built_at > {{ since }}
),

changed_customers as (
    select customer_id from identities where anonymous_id in (select anonymous_id from changed_browsers)
    union
    select customer_id from {{ this }} where anonymous_id in (select anonymous_id from changed_browsers)
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
{% if is_incremental() %}
union all
select customer_id, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
       null, null, null, {{ build_stamp() }}
from changed_customers
where not exists (select 1 from final where final.customer_id = changed_customers.customer_id)
{% endif %}
