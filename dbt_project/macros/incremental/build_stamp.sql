{# When dbt built a row: the start of the dbt invocation that wrote it, the same for every row of one build. Keyed
   incremental models carry it as `built_at`, so what changed since a moment is the rows whose stamp is new (the
   analysts' copy patches only those, orchestration/publish.py) instead of a comparison of every row. #}
{% macro build_stamp() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}
{# In an incremental build of a model whose rows carry `built_at`: the latest stamp its last build has seen. Rows of
   the models it reads that are stamped later were written since (those stamped by the build that wrote this
   model's newest rows, or by a pipeline build that succeeded as a whole, came before it in the same build or
   earlier). The later of two lower bounds: the newest stamp in this model (builds that wrote nothing here leave
   it older) and, in a pipeline build, when the last successful build of the same models ended (tests_scope_start;
   an earlier moment everywhere else). Stamps come from one clock (dbt's run_started_at; the orchestration's end
   time, both UTC): a clock set back would hide the rows stamped in between, until the next full build. #}
{% macro stamps_since() -%}
    {%- if not execute or not is_incremental() -%}{{ return("cast('-infinity' as timestamp)") }}{%- endif -%}
    {%- set newest = run_query('select cast(max(built_at) as varchar) from ' ~ this).columns[0].values()[0] -%}
    {%- set scope = tests_scope_start('built_after') -%}
    {%- if newest is none -%}{{ return(scope) }}{%- endif -%}
    {{ return("greatest(" ~ scope ~ ", cast('" ~ newest ~ "' as timestamp))") }}
{%- endmacro %}
