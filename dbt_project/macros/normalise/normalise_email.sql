{# Trimmed and lowercased; empty becomes null. #}
{% macro normalise_email(expr) -%}
    nullif(lower(trim({{ expr }})), '')
{%- endmacro %}
