{# `name as {{ materialized_cte() }} (...)`: a CTE computed once, however often the query reads its columns.
   PostgreSQL inlines a CTE read once into its reader, which then repeats the CTE's expressions for every reference
   to their columns: a payload's fields (json_texts) were extracted again for each field read, and each layer of
   CTEs above multiplied it (a first build of stg_tracking__events took minutes for thousands of events). DuckDB
   computes each expression once already: nothing there. #}
{% macro materialized_cte() %}{{ return(adapter.dispatch('materialized_cte', 'ttattribution')()) }}{% endmacro %}
{% macro default__materialized_cte() %}{% endmacro %}
{% macro postgres__materialized_cte() %}materialized{% endmacro %}
{# `name as ( select ... {{ kept_apart() }} )`, for a CTE read once whose rows are wide: PostgreSQL inlines it into its
   reader but, with `offset 0` (a subquery with an offset is never merged into the query around it), as a subquery
   of its own, so each of its expressions is still computed once a row, and the rows stream to the reader instead of
   being written to a tuplestore first, which spills to disk past work_mem (every layer of stg_tracking__events did).
   DuckDB: nothing. #}
{% macro kept_apart() %}{{ return(adapter.dispatch('kept_apart', 'ttattribution')()) }}{% endmacro %}
{% macro default__kept_apart() %}{% endmacro %}
{% macro postgres__kept_apart() %}offset 0{% endmacro %}
