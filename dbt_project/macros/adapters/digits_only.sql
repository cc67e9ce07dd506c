{% macro digits_only(expr) %}{{ return(adapter.dispatch('digits_only', 'ttattribution')(expr)) }}{% endmacro %}
{% macro default__digits_only(expr) %}regexp_replace({{ expr }}, '[^0-9]', '', 'g'){% endmacro %}
