{% macro iso_to_timestamp(expr) %}{{ return(adapter.dispatch('iso_to_timestamp', 'ttattribution')(expr)) }}{% endmacro %}
{# Total: null, never an error, for text that is not an ISO-8601 time a timestamp can hold. #}
{% macro default__iso_to_timestamp(expr) %}try(try_cast({{ expr }} as timestamptz) at time zone 'UTC'){% endmacro %}
{# PostgreSQL has no try_cast: the text must be an ISO-8601 date (a day its month has), optionally a time and an
   offset, before it is cast. Forms DuckDB also reads but this does not (a week date, a bare time) are null here. #}
{% macro postgres__iso_to_timestamp(expr) -%}
    {%- set t = 'cast(' ~ expr ~ ' as text)' -%}
    (case when {{ t }} ~ '^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?)?(Z|z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$'
           and cast(substr({{ t }}, 9, 2) as integer) <= extract(day from make_date(cast(substr({{ t }}, 1, 4) as integer), cast(substr({{ t }}, 6, 2) as integer), 1) + interval '1 month' - interval '1 day')
          then cast({{ t }} as timestamptz) at time zone 'UTC' end)
{%- endmacro %}
