-- One row per purchase, attribution model and credited touch: the share of the purchase each model gives each
-- touch, summing to 1 (and to the purchase amount) per purchase and model. A purchase with no touch in a
-- model's window gets one row with no touch (channel "(unattributed)"), so every model accounts for all money.
-- Models: first_touch, last_touch, last_non_direct, linear, position_based, time_decay.
{% set ft_lookback = var('attribution_first_touch_lookback_days') %}
{% set lookback = var('attribution_lookback_days') %}
--
-- Incremental: a purchase's credits depend only on the purchase and its customer's journey. Each row keeps a
-- fingerprint of both (`inputs_fingerprint`); a run computes the credits again only for the purchases whose
-- fingerprint is new or changed (a new purchase, a refund, a new or re-stitched touch, a merge that moved the
-- purchase to another customer), and replaces theirs (delete+insert by purchase). Credits of purchases no longer
-- attributed are deleted after the run (post-hook). The orchestration rebuilds in full when the project changes.
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='purchase_id',
          on_schema_change='fail',
          post_hook="delete from {{ this }} as built where not exists (select 1 from {{ ref('attributed_purchases') }} as p
                                                                     where p.purchase_id = built.purchase_id)") }}
{% set models = ['first_touch', 'last_touch', 'last_non_direct', 'linear', 'position_based', 'time_decay'] %}

-- the journey's fingerprint comes with the purchase (customer_journeys makes it, attributed_purchases keeps it)
with all_purchases as (
    select
        purchases.purchase_id, purchases.customer_id, purchases.purchased_at, purchases.amount,
        purchases.net_amount, purchases.currency,
        {{ fingerprint(['purchases.purchase_id', 'purchases.customer_id', 'purchases.purchased_at',
                        'purchases.amount', 'purchases.net_amount', 'purchases.currency',
                        'purchases.journey_fingerprint']) }} as inputs_fingerprint
    from {{ ref('attributed_purchases') }} as purchases
),

purchases as (
    select * from all_purchases
    {{ where_inputs_changed('all_purchases', 'purchase_id') }}
),

-- the journeys of the purchases' customers only: read twice, this is materialized, and all of them would be every
-- touch in history with every column
journeys as (
    select * from {{ ref('customer_journeys') }}
    where customer_id in (select customer_id from purchases)
),

model_names as (
    {% for m in models %}select '{{ m }}' as attribution_model{% if not loop.last %} union all {% endif %}{% endfor %}
),

-- the touches each model may credit: at or before the purchase, inside the model's lookback. Every model but
-- first touch has the same window, so each touch before a purchase is numbered and weighed once, then credited
-- under each model (numbering it once per model, six times over, took most of this model's time).
touches_before as (
    select
        purchases.purchase_id,
        journeys.touch_id,
        journeys.touched_at,
        journeys.channel,
        {{ datediff_seconds('journeys.touched_at', 'purchases.purchased_at') }} / 86400.0 as days_before,
        {% if ft_lookback is not none -%}
        journeys.touched_at >= purchases.purchased_at - interval '{{ ft_lookback }} days'
        {%- else %}true{% endif %} as in_first_touch_window,
        {% if lookback is not none -%}
        journeys.touched_at >= purchases.purchased_at - interval '{{ lookback }} days'
        {%- else %}true{% endif %} as in_lookback_window
    from purchases
    join journeys
        on journeys.customer_id = purchases.customer_id
       and journeys.touched_at <= purchases.purchased_at
),

-- first touch: the earliest touch in its window
first_touches as (
    select
        purchase_id,
        touch_id,
        row_number() over (partition by purchase_id order by touched_at, touch_id) as position
    from touches_before
    where in_first_touch_window
),

-- the other models' touches: all inside the lookback
positioned as (
    select
        purchase_id,
        touch_id,
        touched_at,
        row_number() over (partition by purchase_id order by touched_at, touch_id) as position,
        count(*) over (partition by purchase_id) as touches,
        -- last non-direct: the latest touch that is not Direct; Direct only when there is nothing else
        row_number() over (partition by purchase_id
                           order by case when channel = 'Direct' then 1 else 0 end, touched_at desc, touch_id desc)
            as non_direct_rank,
        power(0.5, days_before / {{ var('attribution_half_life_days') }}) as decay_weight
    from touches_before
    where in_lookback_window
),

decayed as (
    select
        *,
        -- summed in touch order, so the same touches always give the same bits (an unordered window sum
        -- adds them in whatever order the threads meet them)
        decay_weight / sum(decay_weight) over (
            partition by purchase_id order by touched_at, touch_id
            rows between unbounded preceding and unbounded following) as decay_share
    from positioned
),

weighted as (
    select 'first_touch' as attribution_model, purchase_id, touch_id, 1.0 as credit
    from first_touches
    where position = 1
    union all
    select
        model_names.attribution_model,
        decayed.purchase_id,
        decayed.touch_id,
        case model_names.attribution_model
            when 'last_touch' then case when position = touches then 1.0 else 0.0 end
            when 'last_non_direct' then case when non_direct_rank = 1 then 1.0 else 0.0 end
            when 'linear' then 1.0 / touches
            when 'position_based' then
                case
                    when touches = 1 then 1.0
                    when touches = 2 then 0.5
                    when position = 1 or position = touches then {{ var('attribution_position_endpoint_share') }}
                    else (1 - 2 * {{ var('attribution_position_endpoint_share') }}) / (touches - 2)
                end
            when 'time_decay' then decay_share
        end as credit
    from decayed
    cross join model_names
    where model_names.attribution_model <> 'first_touch'
),

credited as (
    select * from weighted where credit > 0
    union all
    -- purchases without any touch in the model's window: all credit to "(unattributed)"
    select model_names.attribution_model, purchases.purchase_id, cast(null as varchar) as touch_id, 1.0 as credit
    from purchases
    cross join model_names
    where not exists (select 1 from touches_before
                      where touches_before.purchase_id = purchases.purchase_id
                        and case when model_names.attribution_model = 'first_touch'
                                 then touches_before.in_first_touch_window
                                 else touches_before.in_lookback_window end)
),

final as (
    select
        credited.attribution_model,
        credited.purchase_id,
        coalesce(credited.touch_id, '(none)') as touch_id,
        credited.attribution_model || ':' || credited.purchase_id || ':' || coalesce(credited.touch_id, '(none)')
            as credit_id,
        purchases.customer_id,
        purchases.purchased_at,
        purchases.currency,
        cast(credited.credit as float8) as credit,
        cast(credited.credit * purchases.amount as float8) as credited_amount,
        cast(credited.credit * purchases.net_amount as float8) as credited_net_amount,
        journeys.touched_at,
        coalesce(journeys.channel, '(unattributed)') as channel,
        journeys.source,
        journeys.medium,
        journeys.campaign,
        journeys.ad,
        journeys.url as landing_page,
        journeys.click_id_type,
        purchases.inputs_fingerprint
    from credited
    join purchases on purchases.purchase_id = credited.purchase_id
    left join journeys on journeys.touch_id = credited.touch_id
)

select *, {{ build_stamp() }} as built_at from final
