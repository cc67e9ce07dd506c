-- One row per invoice line (il_...), from each invoice's latest state. Reads the price and product from the
-- basil shape (pricing.price_details) and from the older one (price.id / price.product, or plan).
-- Line ids are only unique within an invoice (a peer was bitten by that), so the key is the pair.
--
-- Incremental: only invoices with a new state are read (macro new_object_states); a pre-hook first deletes their
-- old lines, so an invoice whose new state lists fewer lines, or none, loses the others (delete+insert by
-- invoice could not: it only replaces invoices that still have lines). Each line keeps its invoice state's
-- `loaded_at`, which records the loads taken in.
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail',
          pre_hook="{% if is_incremental() %}delete from {{ this }} where invoice_id in (
                        select object_id from {{ ref('stg_stripe__object_states') }}
                        where object_type = 'invoice'{{ new_object_states() }}){% endif %}") }}
with invoices as (
    select object_id as invoice_id, currency, currency_exponent, payload, loaded_at
    from {{ ref('stg_stripe__object_states') }}
    where object_type = 'invoice'{{ new_object_states() }}
),

lines as (
    select
        invoice_id,
        currency,
        currency_exponent,
        loaded_at,
        {{ json_array_elements('payload', 'data.object.lines.data') }} as line
    from invoices
),

final as (
    select
        invoice_id,
        {{ json_text('line', 'id') }} as line_id,
        invoice_id || ':' || {{ json_text('line', 'id') }} as invoice_line_key,
        {{ json_text('line', 'description') }} as description,
        coalesce({{ json_text('line', 'pricing.price_details.price') }}, {{ json_text('line', 'price.id') }},
                 {{ json_text('line', 'plan.id') }}) as price_id,
        coalesce({{ json_text('line', 'pricing.price_details.product') }}, {{ json_text('line', 'price.product') }},
                 {{ json_text('line', 'plan.product') }}) as product_id,
        coalesce({{ safe_cast(json_text('line', 'quantity'), 'integer') }}, 1) as quantity,
        currency,
        {{ to_major_units(json_text('line', 'amount'), 'currency_exponent') }} as amount,
        {{ to_major_units("coalesce(" ~ json_text('line', 'pricing.unit_amount_decimal') ~ ", "
                          ~ json_text('line', 'price.unit_amount') ~ ", " ~ json_text('line', 'plan.amount') ~ ")",
                          'currency_exponent') }} as unit_amount,
        {{ epoch_to_timestamp(json_text('line', 'period.start')) }} as period_start,
        {{ epoch_to_timestamp(json_text('line', 'period.end')) }} as period_end,
        loaded_at
    from lines
)

select * from final
