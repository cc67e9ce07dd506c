{# url parameter value, decoded (the expression is only matched when the URL has an "=", which every parameter
   needs: most page URLs have none, and the regular expression is the costly part) #}
{% macro url_param(url, name) -%}
    (case when strpos({{ url }}, '=') > 0
          then {{ ttattribution.url_decode(ttattribution.regex_extract(url, "'[?&]" ~ name ~ "=([^&#]*)'")) }} end)
{%- endmacro %}
