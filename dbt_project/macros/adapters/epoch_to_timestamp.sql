{% macro epoch_to_timestamp(expr) %}{{ return(adapter.dispatch('epoch_to_timestamp', 'ttattribution')(expr)) }}{% endmacro %}
{# Total: null, never an error, for text that is not an integer or seconds outside the timestamp range. #}
{% macro default__epoch_to_timestamp(expr) %}try(make_timestamp(try_cast({{ expr }} as bigint) * 1000000)){% endmacro %}
{% macro postgres__epoch_to_timestamp(expr) -%}
    (case when {{ postgres__safe_cast(expr, 'bigint') }} between -62135596800 and 253402300799
          then to_timestamp(cast({{ expr }} as bigint)) at time zone 'UTC' end)
{%- endmacro %}
