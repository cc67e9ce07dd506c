-- One row per content line of a TikTok conversion: the invoice lines of an invoice purchase, the line items
-- of a Checkout purchase (when the payload carries them). content_id is the Stripe product (the catalogue
-- item a pixel would name), else the price.
with conversions as (
    select event_id, purchase_id from {{ ref('tiktok_conversions') }} where purchase_id is not null
),

lines as (
    select invoice_id as purchase_id, invoice_line_key as line_key, product_id, price_id, description,
           quantity, unit_amount, amount
    from {{ ref('stg_stripe__invoice_lines') }}
    union all
    select checkout_session_id, checkout_line_item_key, product_id, price_id, description,
           quantity, unit_amount, amount
    from {{ ref('stg_stripe__checkout_line_items') }}
),

final as (
    select
        conversions.event_id,
        lines.line_key,
        coalesce(lines.product_id, lines.price_id) as content_id,
        lines.description as content_name,
        'product' as content_type,
        lines.quantity,
        cast(coalesce(lines.unit_amount, lines.amount / nullif(lines.quantity, 0)) as float8) as price
    from conversions
    join lines on lines.purchase_id = conversions.purchase_id
)

select * from final
