{# json_text('payload', 'data.object.lines.data[0].id') -> the value at that path as text #}
{% macro json_text(column, path) %}{{ return(adapter.dispatch('json_text', 'ttattribution')(column, path)) }}{% endmacro %}
{% macro default__json_text(column, path) %}json_extract_string({{ column }}, '$.{{ path }}'){% endmacro %}
{% macro postgres__json_text(column, path) -%}
    {%- set parts = path | replace('[', '.') | replace(']', '') -%}
    ({{ column }} #>> '{ {{- parts.split('.') | join(',') -}} }')
{%- endmacro %}
