{# dbt-duckdb writes an incremental Python model's new rows to a table named for the model with `__dbt_tmp` and a
   time, meant to be temporary; its Python side creates it as a real table of the default schema, and nothing drops
   it: a table of personal data left behind by every run. This post-hook drops what the model's builds left. #}
{% macro drop_python_leftovers() %}
    {%- set statements = [] -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select table_schema, table_name from information_schema.tables "
            ~ "where table_catalog = current_database() and starts_with(table_name, '"
            ~ this.identifier ~ "__dbt_tmp') and table_type = 'BASE TABLE'") -%}
        {%- for row in found.rows -%}
            {%- do statements.append('drop table if exists "' ~ row[0] ~ '"."' ~ row[1] ~ '"') -%}
        {%- endfor -%}
    {%- endif -%}
    {{ (statements or ['select 1']) | join(';\n') }}
{% endmacro %}
