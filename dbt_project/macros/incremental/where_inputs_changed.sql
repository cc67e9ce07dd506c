{# In an incremental model whose rows keep `inputs_fingerprint`: ` where ...` keeping only the rows of `alias`
   whose key is new or whose fingerprint differs from the one built, or for which `or_also` holds (empty in a full
   build). #}
{% macro where_inputs_changed(alias, key, or_also=none) %}
    {%- if is_incremental() -%}
    where not exists (select 1 from {{ this }} as built
                      where built.{{ key }} = {{ alias }}.{{ key }}
                        and built.inputs_fingerprint = {{ alias }}.inputs_fingerprint)
    {%- if or_also %}
       or {{ or_also }}
    {%- endif -%}
    {%- endif -%}
{% endmacro %}
