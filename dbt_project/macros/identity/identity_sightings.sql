{# The identity sightings of int_identity_edges: one row per pair of identifiers a source row names together, from
   the CTEs `prefix ~ source` (all of a source's rows, or those near the seeds of an incremental build), with the
   nodes' names. `sightings`: (source, edge_source, left type, left column, right type, right column, when, when
   claimed, verified, condition); `only`: one source's. Phones that are not E.164 are no identifier. #}
{% macro identity_sightings(sightings, prefix='', only=none) %}
    select edge_source, left_type, left_value, right_type, right_value, observed_at, claimed_at, verified,
           left_type || ':' || left_value as left_node, right_type || ':' || right_value as right_node
    from (
        {%- for s in sightings if only is none or s[0] == only %}
        select '{{ s[1] }}' as edge_source, '{{ s[2] }}' as left_type, {{ s[3] }} as left_value,
               '{{ s[4] }}' as right_type, {{ s[5] }} as right_value, {{ s[6] }} as observed_at,
               cast({{ s[7] }} as timestamp) as claimed_at, {{ s[8] }} as verified
        from {{ prefix }}{{ s[0] }}{% if s[9] %} where {{ s[9] }}{% endif %}
        {% if not loop.last %}union all{% endif %}
        {%- endfor %}
    ) as sighted
    where left_value is not null and right_value is not null
      and (right_type <> 'phone' or {{ valid_e164('right_value') }})
      and (left_type <> 'phone' or {{ valid_e164('left_value') }})
{% endmacro %}
