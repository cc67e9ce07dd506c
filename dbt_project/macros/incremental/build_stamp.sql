{# When dbt built a row: the start of the dbt invocation that wrote it, the same for every row of one build. Keyed
   incremental models carry it as `built_at`, so what changed since a moment is the rows whose stamp is new (the
   analysts' copy patches only those, orchestration/publish.py) instead of a comparison of every row. #}
{% macro build_stamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}
