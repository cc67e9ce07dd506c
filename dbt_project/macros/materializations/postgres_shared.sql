{#- Materializations for a PostgreSQL warehouse that analysts query while runs write (docs/architecture.md).

dbt's own `table` and `view` replace a relation by renaming the new one into place and dropping the old: that needs
an ACCESS EXCLUSIVE lock, which waits for every transaction that has read the relation, so one analyst's open
transaction (a notebook, a BI tool's session) stopped the run until it ended. Here:

- table: the new rows are built beside the table as dbt does, then, when the columns are the same, moved in by
  `delete` and `insert` in the run's transaction (row locks only: a reader keeps the snapshot it began with and the
  next one sees the new rows whole). A change of columns replaces the table as dbt does (that one run waits).
- view: created again only when its SQL changed (a digest of it is kept in the view's comment); otherwise left as it
  is, which is also what keeps it from taking the lock. -#}

{% materialization table, adapter='postgres' %}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') %}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
  {%- set backup_relation_type = 'table' if existing_relation is none else existing_relation.type -%}
  {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}
  {%- set preexisting_backup_relation = load_cached_relation(backup_relation) -%}
  {% set grant_config = config.get('grants') %}

  {{ drop_relation_if_exists(preexisting_intermediate_relation) }}
  {{ drop_relation_if_exists(preexisting_backup_relation) }}
  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('main') -%}
    {{ get_create_table_as_sql(False, intermediate_relation, sql) }}
  {%- endcall %}
  {% do create_indexes(intermediate_relation) %}

  {%- set refill = false -%}
  {%- if existing_relation is not none and existing_relation.type == 'table' -%}
    {%- set old_columns = adapter.get_columns_in_relation(existing_relation) | map(attribute='name') | list -%}
    {%- set old_types = adapter.get_columns_in_relation(existing_relation) | map(attribute='data_type') | list -%}
    {%- set new_columns = adapter.get_columns_in_relation(intermediate_relation) | map(attribute='name') | list -%}
    {%- set new_types = adapter.get_columns_in_relation(intermediate_relation) | map(attribute='data_type') | list -%}
    {%- set refill = old_columns == new_columns and old_types == new_types -%}
  {%- endif -%}

  {% if refill %}
    {%- set columns = adapter.get_columns_in_relation(intermediate_relation) | map(attribute='quoted') | join(', ') -%}
    {% call statement('refill') -%}
      delete from {{ target_relation }};
      insert into {{ target_relation }} ({{ columns }}) select {{ columns }} from {{ intermediate_relation }};
      drop table {{ intermediate_relation }};
    {%- endcall %}
  {% else %}
    {{ ttattribution.swap_into_place(existing_relation, intermediate_relation, backup_relation, target_relation) }}
  {% endif %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}
  {% do persist_docs(target_relation, model) %}
  {{ adapter.commit() }}
  {% if not refill %}{{ drop_relation_if_exists(backup_relation) }}{% endif %}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{% materialization view, adapter='postgres' %}
  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set digest = 'ttattribution sql ' ~ local_md5(sql) -%}
  {%- set current = run_query("select obj_description(to_regclass('" ~ target_relation ~ "'), 'pg_class')") -%}
  {%- set unchanged = current.columns[0].values()[0] == digest and not should_full_refresh() -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {% if unchanged and existing_relation is not none and existing_relation.type == 'view' %}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {% call statement('main') -%} select 1 {%- endcall %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
  {% endif %}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
  {%- set backup_relation_type = 'view' if existing_relation is none else existing_relation.type -%}
  {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}
  {%- set preexisting_backup_relation = load_cached_relation(backup_relation) -%}
  {% set grant_config = config.get('grants') %}
  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ drop_relation_if_exists(preexisting_intermediate_relation) }}
  {{ drop_relation_if_exists(preexisting_backup_relation) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}
  {% call statement('main') -%}
    {{ get_create_view_as_sql(intermediate_relation, sql) }}
  {%- endcall %}
  {{ ttattribution.swap_into_place(existing_relation, intermediate_relation, backup_relation, target_relation) }}
  {% call statement('digest') -%} comment on view {{ target_relation }} is '{{ digest }}' {%- endcall %}
  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ drop_relation_if_exists(backup_relation) }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{# dbt's own replacement, as its table and view materializations do it: the old relation renamed out of the way (it is
   dropped after the commit), the new one renamed into place. The lock it takes is the one the above avoid. #}
{% macro swap_into_place(existing_relation, intermediate_relation, backup_relation, target_relation) %}
  {% if existing_relation is not none %}
    {% set existing_relation = load_cached_relation(existing_relation) %}
    {% if existing_relation is not none %}
      {{ adapter.rename_relation(existing_relation, backup_relation) }}
    {% endif %}
  {% endif %}
  {{ adapter.rename_relation(intermediate_relation, target_relation) }}
{% endmacro %}
