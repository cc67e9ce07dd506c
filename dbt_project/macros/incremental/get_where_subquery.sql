{# Tests that scan a whole table on every build cost a run more as history grows. In a pipeline build that is not a
   full refresh, a test configured with `where: "loaded_at > __loads_after__"` checks only the rows of loads since
   the last build of the same models, and one with `where: "built_at > __built_after__"` (on a keyed incremental
   model, whose rows carry their build's stamp) only the rows built since the last successful build: the others
   were checked when they were loaded or built. The pipeline writes both times into monitoring.dbt_tests_scope for
   the build (orchestration/defs/dbt.py); everywhere else (`make test`, dbt by hand, a full refresh) the test checks
   every row. Only for tests a row or a key decides (not_null, accepted_values, unique on the key a build replaces
   whole): they cannot fail on an old row because of a new one. dbt's own macro, with those placeholders; any other
   `where` is used as written. #}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__loads_after__' in where -%}
        {%- set where = where | replace('__loads_after__', tests_scope_start('loads_after')) -%}
    {%- endif -%}
    {%- if where and '__built_after__' in where -%}
        {%- set where = where | replace('__built_after__', tests_scope_start('built_after')) -%}
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

{% macro tests_scope_start(column) -%}
    {%- set everything = "cast('-infinity' as timestamp)" -%}
    {%- if not execute or flags.FULL_REFRESH -%}{{ return(everything) }}{%- endif -%}
    {%- set scope = adapter.get_relation(database=target.database, schema='monitoring', identifier='dbt_tests_scope') -%}
    {%- if scope is none -%}{{ return(everything) }}{%- endif -%}
    {%- set after = run_query('select cast(max(' ~ column ~ ') as varchar) from ' ~ scope).columns[0].values()[0] -%}
    {%- if after is none -%}{{ return(everything) }}{%- endif -%}
    {{ return("cast('" ~ after ~ "' as timestamp)") }}
{%- endmacro %}
