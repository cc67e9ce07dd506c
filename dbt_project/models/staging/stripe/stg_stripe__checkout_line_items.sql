-- One row per Checkout Session line item, when the session payload carries them. Webhooks do not include
-- line items (Stripe only returns them when asked to expand `line_items`), so this is filled by pulls and
-- backfills that expand them; sessions without them simply have no rows here.
with sessions as (
    select object_id as checkout_session_id, currency, currency_exponent, payload
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'checkout.session'
),

items as (
    select
        checkout_session_id,
        currency,
        currency_exponent,
        {{ json_array_elements('payload', 'data.object.line_items.data') }} as item
    from sessions
),

final as (
    select
        checkout_session_id,
        {{ json_text('item', 'id') }} as line_item_id,
        checkout_session_id || ':' || {{ json_text('item', 'id') }} as checkout_line_item_key,
        {{ json_text('item', 'description') }} as description,
        {{ json_text('item', 'price.id') }} as price_id,
        {{ json_text('item', 'price.product') }} as product_id,
        coalesce({{ safe_cast(json_text('item', 'quantity'), 'integer') }}, 1) as quantity,
        currency,
        {{ to_major_units(json_text('item', 'amount_total'), 'currency_exponent') }} as amount,
        {{ to_major_units(json_text('item', 'price.unit_amount'), 'currency_exponent') }} as unit_amount
    from items
)

select * from final
