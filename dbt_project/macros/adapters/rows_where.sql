{# `where {{ rows_where('events.rowid', ref('stg_tracking__events'), "anonymous_id in (select ...)") }}`: the rows
   of a large table that a condition selects, found by a scan of the condition's own columns and then fetched by row
   id. DuckDB reads every projected column of every row a join or a semi-join filters (it fetches only the rows a
   constant filter keeps, and those a filter on rowid keeps), so an increment that reads a few browsers' events read
   the long text of every event in history; found first by their rowid (two narrow columns), the scan fetches those
   rows alone. `locator` names the outer scan's rowid (`alias.rowid`, or a view's column carrying it,
   row_locator()). PostgreSQL: the condition itself, on the outer query's columns (its scans read whole rows anyway,
   and the columns a condition tests there are indexed). #}
{% macro rows_where(locator, relation, condition) %}
    {{ return(adapter.dispatch('rows_where', 'ttattribution')(locator, relation, condition)) }}
{% endmacro %}
{% macro default__rows_where(locator, relation, condition) -%}
    {{ locator }} in (select rowid from {{ relation }} where {{ condition }})
{%- endmacro %}
{% macro postgres__rows_where(locator, relation, condition) -%}
    ({{ condition }})
{%- endmacro %}
{# A table's row id, for a view to carry to rows_where (DuckDB's rowid); nothing to carry on PostgreSQL. #}
{% macro row_locator() %}{{ return(adapter.dispatch('row_locator', 'ttattribution')()) }}{% endmacro %}
{% macro default__row_locator() %}rowid{% endmacro %}
{% macro postgres__row_locator() %}cast(null as bigint){% endmacro %}
