{% macro regex_extract(expr, pattern) %}{{ return(adapter.dispatch('regex_extract', 'ttattribution')(expr, pattern)) }}{% endmacro %}
{% macro default__regex_extract(expr, pattern) %}nullif(regexp_extract({{ expr }}, {{ pattern }}, 1), ''){% endmacro %}
{% macro postgres__regex_extract(expr, pattern) %}nullif(substring({{ expr }} from {{ pattern }}), ''){% endmacro %}
