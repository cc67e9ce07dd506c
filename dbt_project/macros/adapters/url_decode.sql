{% macro url_decode(expr) %}{{ return(adapter.dispatch('url_decode', 'ttattribution')(expr)) }}{% endmacro %}
{# Total: a malformed percent-encoding (or one that decodes to invalid UTF-8) is null, never an error. #}
{% macro default__url_decode(expr) %}try(url_decode(replace({{ expr }}, '+', ' '))){% endmacro %}
{# the function (postgres_functions.sql) is only called on text holding a '%': most parameters hold none #}
{% macro postgres__url_decode(expr) -%}
    (case when strpos({{ expr }}, '%') = 0 then replace({{ expr }}, '+', ' ')
          else ttattr_functions.url_decode(replace({{ expr }}, '+', ' ')) end)
{%- endmacro %}
