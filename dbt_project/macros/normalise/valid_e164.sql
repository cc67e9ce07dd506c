{% macro valid_e164(expr) -%}
    ({{ expr }} is not null and length({{ expr }}) between 9 and 16)
{%- endmacro %}
