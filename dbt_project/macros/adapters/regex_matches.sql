{% macro regex_matches(expr, pattern) %}{{ return(adapter.dispatch('regex_matches', 'ttattribution')(expr, pattern)) }}{% endmacro %}
{% macro default__regex_matches(expr, pattern) %}regexp_matches({{ expr }}, {{ pattern }}){% endmacro %}
{# The patterns are written for RE2 (DuckDB), where \b is a word boundary; in PostgreSQL's expressions that is \y
   (\b is a backspace there) #}
{% macro postgres__regex_matches(expr, pattern) %}({{ expr }} ~ replace({{ pattern }}, '\b', '\y')){% endmacro %}
