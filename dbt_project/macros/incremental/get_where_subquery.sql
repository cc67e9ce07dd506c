{# Tests that scan a whole table on every build cost a run more as history grows. A test configured with
   `where: "loaded_at > __loads_after__"` checks, in a pipeline build that is not a full refresh, only the rows of
   loads since the last build of the same models (the pipeline writes that time into monitoring.dbt_tests_scope
   for the build, orchestration/defs/dbt.py); everywhere else (`make test`, dbt by hand, a full refresh) it checks
   every row. dbt's own macro, with that one placeholder; any other `where` is used as written. #}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__loads_after__' in where -%}
        {%- set where = where | replace('__loads_after__', tests_scope_start()) -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{% macro tests_scope_start() -%}
    {%- set everything = "cast('-infinity' as timestamp)" -%}
    {%- if not execute or flags.FULL_REFRESH -%}{{ return(everything) }}{%- endif -%}
    {%- set scope = adapter.get_relation(database=target.database, schema='monitoring', identifier='dbt_tests_scope') -%}
    {%- if scope is none -%}{{ return(everything) }}{%- endif -%}
    {%- set after = run_query('select cast(max(loads_after) as varchar) from ' ~ scope).columns[0].values()[0] -%}
    {%- if after is none -%}{{ return(everything) }}{%- endif -%}
    {{ return("cast('" ~ after ~ "' as timestamp)") }}
{%- endmacro %}
