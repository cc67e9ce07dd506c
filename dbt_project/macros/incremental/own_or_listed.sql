{# For a staging model of one row per Stripe object found in its own latest state or listed in its parent's (refunds
   in a charge, invoice payments in an invoice: each listed only in its own parent), incremental by the object's id
   (delete+insert; the post-hook `delete from this where found_in is null`). `new_states`: the own and parent
   states of the loads not taken in yet (new_object_states). `touched`: the objects whose row can change, with a
   new state of their own, listed in a new parent state (`listed`: the CTE of those listings), or listed before in a
   parent whose state changed (a newer state may list none: only some webhooks and the backfill carry the list). #}
{% macro own_or_listed_new_states(own_type, parent_type) %}
new_states as (
    select object_type, object_id from {{ ref('stg_stripe__object_states') }}
    where object_type in ({{ literal(own_type) }}, {{ literal(parent_type) }}){{ new_object_states() }}
),
{% endmacro %}

{% macro own_or_listed_touched(key, parent_key, own_type, parent_type, listed, found_in_parent) %}
touched as (
    select object_id as {{ key }} from new_states where object_type = {{ literal(own_type) }}
    union
    select {{ key }} from {{ listed }} where {{ key }} is not null
    union
    select {{ key }} from {{ this }}
    where found_in = {{ literal(found_in_parent) }}
      and {{ parent_key }} in (select object_id from new_states where object_type = {{ literal(parent_type) }})
),
{% endmacro %}

{# The model's rows from `winners` (one row per object, its columns `key` and `columns`): all of them in a full build;
   in an incremental one, one row per touched object, its winner's or, when no source lists it any more, one without
   found_in that the post-hook deletes (a left join keeps the columns' types, where a union with nulls would not). #}
{% macro own_or_listed_rows(key, columns) %}
    {%- if is_incremental() %}
    select touched.{{ key }}{% for c in columns %}, winners.{{ c }}{% endfor %}
    from touched
    left join winners on winners.{{ key }} = touched.{{ key }}
    {%- else %}
    select * from winners
    {%- endif %}
{% endmacro %}
