{% macro iso_to_timestamp(expr) %}{{ return(adapter.dispatch('iso_to_timestamp', 'ttattribution')(expr)) }}{% endmacro %}
{# Total: null, never an error, for text that is not an ISO-8601 time a timestamp can hold. #}
{% macro default__iso_to_timestamp(expr) %}try(try_cast({{ expr }} as timestamptz) at time zone 'UTC'){% endmacro %}
