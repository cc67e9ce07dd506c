-- One row per currency and period of seed fx_rates: the USD value of one unit from valid_from until the
-- currency's next rate (valid_to, exclusive; null while it is the newest). Replace the seed's rows with your finance
-- team's rates (daily or monthly, any number of periods per currency); a currency it does not list has no rate, and
-- the marts then show the amount unconverted rather than guess.
with rates as (
    select upper(currency) as currency, valid_from, usd_per_unit
    from {{ ref('fx_rates') }}
    where currency is not null and valid_from is not null and usd_per_unit > 0
),

final as (
    select
        currency,
        valid_from,
        lead(valid_from) over (partition by currency order by valid_from) as valid_to,
        usd_per_unit
    from rates
)

select * from final
