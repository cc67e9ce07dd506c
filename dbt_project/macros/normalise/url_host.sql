{# host without "www." #}
{% macro url_host(url) -%}
    {{ ttattribution.regex_extract("lower(" ~ url ~ ")", "'^[a-z][a-z0-9+.-]*://(?:www\\.)?([^/:?#]+)'") }}
{%- endmacro %}
