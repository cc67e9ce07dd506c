{# Normalisation shared by the identity graph and the TikTok match keys. #}

{# Trimmed and lowercased; empty becomes null. #}
{% macro normalise_email(expr) -%}
    nullif(lower(trim({{ expr }})), '')
{%- endmacro %}

{# E.164: "+" and 8 to 15 digits. "+..." and "00..." are international; 10 digits, or 11 starting with the
   default calling code "1", are read in the default country; anything else cannot be placed and is null. #}
{% macro normalise_phone(expr) -%}
    {%- set cc = var('default_phone_country_code') -%}
    {%- set digits = ttattribution.digits_only(expr) -%}
    (case
        when {{ expr }} is null then null
        when trim({{ expr }}) like '+%' then '+' || {{ digits }}
        when {{ digits }} like '00%' then '+' || substr({{ digits }}, 3)
        when length({{ digits }}) = 10 and '{{ cc }}' = '1' then '+1' || {{ digits }}
        when length({{ digits }}) = 11 and '{{ cc }}' = '1' and {{ digits }} like '1%' then '+' || {{ digits }}
        else null
    end)
{%- endmacro %}

{% macro valid_e164(expr) -%}
    ({{ expr }} is not null and length({{ expr }}) between 9 and 16)
{%- endmacro %}

{# url parameter value, decoded (the expression is only matched when the URL has an "=", which every parameter
   needs: most page URLs have none, and the regular expression is the costly part) #}
{% macro url_param(url, name) -%}
    (case when strpos({{ url }}, '=') > 0
          then {{ ttattribution.url_decode(ttattribution.regex_extract(url, "'[?&]" ~ name ~ "=([^&#]*)'")) }} end)
{%- endmacro %}

{# host without "www." #}
{% macro url_host(url) -%}
    {{ ttattribution.regex_extract("lower(" ~ url ~ ")", "'^[a-z][a-z0-9+.-]*://(?:www\\.)?([^/:?#]+)'") }}
{%- endmacro %}

{# Stripe minor units to major units by the currency's exponent (2 when the seed does not list it); null, never
   an error, for an amount that is not a number or does not fit. #}
{% macro to_major_units(amount, exponent) -%}
    {{ ttattribution.safe_cast(ttattribution.safe_cast(amount, 'double') ~ ' / power(10, coalesce(' ~ exponent ~ ', 2))', 'decimal(18, 3)') }}
{%- endmacro %}
