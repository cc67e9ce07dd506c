{% macro md5_hex(expr) %}md5({{ expr }}){% endmacro %}
