{# json_texts('payload', ['a.b', 'c']) -> an array of the values at those paths as text, indexed from 1. The JSON
   is parsed once for all the paths: on DuckDB that is several times faster than one json_text per path. #}
{% macro json_texts(column, paths) %}{{ return(adapter.dispatch('json_texts', 'ttattribution')(column, paths)) }}{% endmacro %}
{% macro default__json_texts(column, paths) -%}
    json_extract_string({{ column }}, [{% for p in paths %}'$.{{ p }}'{% if not loop.last %}, {% endif %}{% endfor %}])
{%- endmacro %}
{% macro postgres__json_texts(column, paths) -%}
    array[{% for p in paths %}{{ postgres__json_text(column, p) }}{% if not loop.last %}, {% endif %}{% endfor %}]
{%- endmacro %}
