{# Whether a text (or JSON) value contains a literal string: a cheap filter before parsing JSON. #}
{% macro text_contains(expr, needle) %}{{ return(adapter.dispatch('text_contains', 'ttattribution')(expr, needle)) }}{% endmacro %}
{% macro default__text_contains(expr, needle) %}contains(cast({{ expr }} as varchar), {{ literal(needle) }}){% endmacro %}
{% macro postgres__text_contains(expr, needle) %}(strpos(cast({{ expr }} as text), {{ literal(needle) }}) > 0){% endmacro %}
