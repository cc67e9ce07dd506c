{# safe_cast(expr, 'bigint') -> the value as that type, or null when it is not one (never an error): every
   expression over landed data is total. Types: bigint, integer, float8, decimal(p, s). #}
{% macro safe_cast(expr, type) %}{{ return(adapter.dispatch('safe_cast', 'ttattribution')(expr, type)) }}{% endmacro %}
{% macro default__safe_cast(expr, type) %}try_cast({{ expr }} as {{ type }}){% endmacro %}
{# PostgreSQL has no try_cast: the text is checked against the type's form and range first. Integers by their digits
   (18 fit a bigint, 9 an integer), numbers by a form whose magnitude a float8 holds (at most 30 digits and a
   two-digit exponent), decimals also below their precision's bound. Other types are cast as dbt's own safe_cast
   does on PostgreSQL (this macro takes its name's place: unit tests cast their fixtures with it). #}
{% macro postgres__safe_cast(expr, type) -%}
    {%- set t = type | lower | replace(' ', '') -%}
    {%- set number_types = ('float8', 'doubleprecision', 'real', 'float4') -%}
    {%- set text = 'cast(' ~ expr ~ ' as text)' -%}
    {%- if t in ('bigint', 'integer') -%}
        (case when {{ text }} ~ '^\s*[-+]?[0-9]{1,{{ 18 if t == "bigint" else 9 }}}\s*$' then cast({{ text }} as {{ type }}) end)
    {%- else -%}
        {%- set number = "'^\s*[-+]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][-+]?[0-9]{1,2})?\s*$'" -%}
        {%- if t.startswith('decimal(') or t.startswith('numeric(') -%}
            {%- set ps = t.split('(')[1].rstrip(')').split(',') -%}
            {%- set bound = '1' ~ '0' * (ps[0] | int - ps[1] | int) -%}
            {#- the outer cast keeps the precision and scale, which a case expression drops -#}
            cast(case when {{ text }} ~ {{ number }} and abs(cast({{ text }} as numeric)) < {{ bound }} - 1
                      then cast(cast({{ text }} as numeric) as {{ type }}) end as {{ type }})
        {%- elif t in number_types -%}
            (case when {{ text }} ~ {{ number }} then cast({{ text }} as {{ type }}) end)
        {%- else -%}
            cast({{ expr }} as {{ type }})
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
