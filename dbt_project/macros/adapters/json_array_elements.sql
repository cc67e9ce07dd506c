{# A set-returning expression for the select list: one row per element of the JSON array at `path`. #}
{% macro json_array_elements(column, path) %}{{ return(adapter.dispatch('json_array_elements', 'ttattribution')(column, path)) }}{% endmacro %}
{% macro default__json_array_elements(column, path) %}unnest(json_extract({{ column }}, '$.{{ path }}[*]')){% endmacro %}
{% macro postgres__json_array_elements(column, path) -%}
    jsonb_array_elements({{ column }} #> '{ {{- path.split('.') | join(',') -}} }')
{%- endmacro %}
