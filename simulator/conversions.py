"""Synthetic rows of marts.tiktok_conversions (and their contents) at any size, made by DuckDB in one statement:
for delivery tests and the delivery benchmark, where building a whole world first would only add time."""

from __future__ import annotations

from datetime import datetime

import duckdb


def make_conversions(
    con: duckdb.DuckDBPyConnection,
    n: int,
    now: datetime,
    *,
    start: int = 0,
    consent_denied_every: int = 0,
    renewal_every: int = 0,
    not_tiktok_every: int = 0,
    age_hours_span: float = 48.0,
    replace: bool = True,
) -> None:
    """Rows ``conv_<start>`` ... ``conv_<start+n-1>``, all eligible unless a ``*_every`` knob says otherwise,
    with event times spread over the ``age_hours_span`` hours before ``now``."""
    verb = "create or replace table" if replace else "insert into"
    con.execute("create schema if not exists marts")
    select = f"""
        select
            'conv_' || lpad(cast(i as varchar), 9, '0') as event_id,
            'Purchase' as event_name,
            cast(? as timestamp) - to_microseconds(cast(((i * 7919) % 1000) / 1000.0 * ? * 3600e6 as bigint))
                as event_time,
            'in_' || lpad(cast(i as varchar), 9, '0') as purchase_id,
            'cust_' || cast(i // 2 as varchar) as customer_id,
            cast(29 + (i % 5) * 10 as decimal(18, 3)) as value,
            'USD' as currency,
            {f"i % {renewal_every} <> 0" if renewal_every else "true"} as is_first_purchase,
            {f"i % {renewal_every} = 0" if renewal_every else "false"} as is_renewal,
            {f"i % {not_tiktok_every} <> 0" if not_tiktok_every else "true"} as attributed_to_tiktok,
            'https://shop.example/?ttclid=E.C.P.' || i as page_url,
            'Buyer' || i || ' van Example' as customer_name,
            'San Francisco' as address_city,
            'CA' as address_state,
            'US' as address_country,
            '94' || lpad(cast(i % 1000 as varchar), 3, '0') as address_postal_code,
            'E.C.P.click' || i as ttclid,
            'ttp' || i as ttp,
            'buyer' || i || '@example.org,Other.Buyer' || i || '@Example.org' as emails,
            '+1415' || lpad(cast(2000000 + i % 7999999 as varchar), 7, '0') as phones,
            '203.0.113.' || (i % 250) as ip,
            'Mozilla/5.0 (synthetic)' as user_agent,
            'en-US' as locale,
            {f"i % {consent_denied_every} <> 0" if consent_denied_every else "true"} as advertising_consent,
            true as has_ttclid, true as has_email, true as has_phone, true as has_ttp, true as has_name,
            true as has_address
        from range(?, ?) t(i)
    """
    if replace:
        con.execute(
            f"""{verb} marts.tiktok_conversions as
            select *, case when not advertising_consent then 'no_consent' end as ineligible_reason,
                   advertising_consent as eligible
            from ({select})""",
            [now, age_hours_span, start, start + n],
        )
        con.execute("""create or replace table marts.tiktok_conversion_contents as
            select event_id, purchase_id || ':il_1' as line_key, 'prod_pro' as content_id,
                   'Pro plan' as content_name, 'product' as content_type, 1 as quantity, value as price
            from marts.tiktok_conversions""")
    else:
        con.execute(
            f"""insert into marts.tiktok_conversions
            select *, case when not advertising_consent then 'no_consent' end, advertising_consent
            from ({select})""",
            [now, age_hours_span, start, start + n],
        )
        con.execute("""insert into marts.tiktok_conversion_contents
            select event_id, purchase_id || ':il_1', 'prod_pro', 'Pro plan', 'product', 1, value
            from marts.tiktok_conversions
            where event_id not in (select event_id from marts.tiktok_conversion_contents)""")
