{# `name as {{ materialized_cte() }} (...)`: a CTE computed once, however often the query reads its columns.
   PostgreSQL inlines a CTE read once into its reader, which then repeats the CTE's expressions for every reference
   to their columns: a payload's fields (json_texts) were extracted again for each field read, and each layer of
   CTEs above multiplied it (a first build of stg_tracking__events took minutes for thousands of events). DuckDB
   computes each expression once already: nothing there. #}
{% macro materialized_cte() %}{{ return(adapter.dispatch('materialized_cte', 'ttattribution')()) }}{% endmacro %}
{% macro default__materialized_cte() %}{% endmacro %}
{% macro postgres__materialized_cte() %}materialized{% endmacro %}
