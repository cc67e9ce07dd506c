{# The body of a staging model of one row per Stripe object of `object_type`: the object states (only the new
   ones in an incremental run, see new_object_states), each payload parsed once for `paths` under data.object into
   the list `f` (read it by name with json_text_refs(paths)). #}
{% macro stripe_object_states(object_type, paths) %}
    {%- set object_paths = [] %}{% for p in paths %}{% do object_paths.append('data.object.' ~ p) %}{% endfor %}
    select *, {{ json_texts('payload', object_paths) }} as f
    from {{ ref('stg_stripe__object_states') }}
    where object_type = {{ literal(object_type) }}{{ new_object_states() }}
{%- endmacro %}
