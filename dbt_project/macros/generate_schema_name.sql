{# Models land in the schema named in their config (staging, intermediate, marts), not "<target>_<name>":
   analysts and the reverse ETL query fixed names such as marts.attributed_purchases. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
