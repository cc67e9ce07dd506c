{# A quoted SQL string literal. #}
{% macro literal(value) %}'{{ value | string | replace("'", "''") }}'{% endmacro %}
