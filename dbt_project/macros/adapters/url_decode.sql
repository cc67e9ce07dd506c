{% macro url_decode(expr) %}{{ return(adapter.dispatch('url_decode', 'ttattribution')(expr)) }}{% endmacro %}
{# Total: a malformed percent-encoding (or one that decodes to invalid UTF-8) is null, never an error. #}
{% macro default__url_decode(expr) %}try(url_decode(replace({{ expr }}, '+', ' '))){% endmacro %}
{% macro postgres__url_decode(expr) %}replace({{ expr }}, '+', ' '){% endmacro %}
