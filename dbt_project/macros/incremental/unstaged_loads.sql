{# The loads of `source_relation` that `this` (an incremental model) has not taken in yet, as a condition on the
   source's `_loaded_at`: the loader writes each batch of files in one transaction, all its rows with one
   `_loaded_at`, so a load is either wholly staged or not at all. The loads are listed while the model runs and
   written into the SQL as constants, so the source is read only for them: the raw rows of staged loads are
   skipped unread (their row groups' min/max rule them out), and nothing compares every new id with every
   staged one. Loads newer than a day before the newest staged one are considered, so a load that committed late
   with an earlier clock is still taken in. `false` when there is nothing new. #}
{% macro unstaged_loads(source_relation, source_loaded_at='_loaded_at', staged_loaded_at='loaded_at') %}
    {%- if not execute -%}{{ return('true') }}{%- endif -%}
    {%- set since -%}
        (select coalesce(max({{ staged_loaded_at }}), cast('1970-01-01' as timestamp)) - interval '1 day' from {{ this }})
    {%- endset -%}
    {%- set result = run_query(
        'select distinct cast(' ~ source_loaded_at ~ ' as varchar) from ' ~ source_relation
        ~ ' where ' ~ source_loaded_at ~ ' >= ' ~ since
        ~ ' except select distinct cast(' ~ staged_loaded_at ~ ' as varchar) from ' ~ this
        ~ ' where ' ~ staged_loaded_at ~ ' >= ' ~ since ~ ' order by 1') -%}
    {%- set loads = result.columns[0].values() | list -%}
    {%- if not loads -%}{{ return('false') }}{%- endif -%}
    {%- set constants = [] -%}
    {%- for load in loads %}{% do constants.append("cast('" ~ load ~ "' as timestamp)") %}{% endfor -%}
    {{ return(source_loaded_at ~ ' in (' ~ constants | join(', ') ~ ')') }}
{% endmacro %}
