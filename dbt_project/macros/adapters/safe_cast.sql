{# safe_cast(expr, 'bigint') -> the value as that type, or null when it is not one (never an error): every
   expression over landed data is total. Types: bigint, integer, double. #}
{% macro safe_cast(expr, type) %}{{ return(adapter.dispatch('safe_cast', 'ttattribution')(expr, type)) }}{% endmacro %}
{% macro default__safe_cast(expr, type) %}try_cast({{ expr }} as {{ type }}){% endmacro %}
{% macro postgres__safe_cast(expr, type) -%}
    {%- set pattern = "'^\s*-?[0-9]{1,18}\s*$'" if type in ('bigint', 'integer') else "'^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?\s*$'" -%}
    (case when cast({{ expr }} as text) ~ {{ pattern }} then cast(cast({{ expr }} as text) as {{ type }}) end)
{%- endmacro %}
