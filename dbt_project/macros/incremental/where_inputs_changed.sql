{# In an incremental model whose rows keep `inputs_fingerprint`: ` where ...` keeping only the rows of `alias`
   whose key is new or whose fingerprint differs from the one built (empty in a full build). #}
{% macro where_inputs_changed(alias, key) %}
    {%- if is_incremental() -%}
    where not exists (select 1 from {{ this }} as built
                      where built.{{ key }} = {{ alias }}.{{ key }}
                        and built.inputs_fingerprint = {{ alias }}.inputs_fingerprint)
    {%- endif -%}
{% endmacro %}
