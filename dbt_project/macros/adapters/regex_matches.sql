{% macro regex_matches(expr, pattern) %}{{ return(adapter.dispatch('regex_matches', 'ttattribution')(expr, pattern)) }}{% endmacro %}
{% macro default__regex_matches(expr, pattern) %}regexp_matches({{ expr }}, {{ pattern }}){% endmacro %}
{% macro postgres__regex_matches(expr, pattern) %}({{ expr }} ~ {{ pattern }}){% endmacro %}
