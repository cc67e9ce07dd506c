{# For a staging model read from stg_stripe__object_states and incremental by its object id: in an incremental
   run, only the object states that loads not taken in by this model yet have chosen (` and loaded_at in (...)`,
   see unstaged_loads). Each such state replaces the object's rows, so the table equals a rebuild. Empty in a full
   build. #}
{% macro new_object_states() %}
    {%- if is_incremental() -%}
        {{ return(' and ' ~ unstaged_loads(ref('stg_stripe__object_states'), 'loaded_at')) }}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}
