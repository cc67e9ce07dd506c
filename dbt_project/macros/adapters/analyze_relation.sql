{# A post-hook of every model: on PostgreSQL, fresh statistics for what the model just wrote (autovacuum analyzes a
   table some time after large writes, and the next models were planned on the old counts meanwhile: a join planned
   for one row met thousands, and int_standalone_payment_intents took minutes instead of a second at 1M events).
   Nothing on DuckDB, whose statistics are kept as it writes. #}
{% macro analyze_relation() %}{{ return(adapter.dispatch('analyze_relation', 'ttattribution')()) }}{% endmacro %}
{% macro default__analyze_relation() %}{% endmacro %}
{% macro postgres__analyze_relation() %}
    {%- if model.config.materialized in ('table', 'incremental') -%}analyze {{ this }}{%- endif -%}
{% endmacro %}
