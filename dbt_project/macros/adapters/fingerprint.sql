{# fingerprint(['a', 'b']) -> a 64-bit hash of the values together, for telling whether the inputs of a row have
   changed since it was built. Combined over a group with bit_xor (order-free; on rows that are distinct). #}
{% macro fingerprint(exprs) %}{{ return(adapter.dispatch('fingerprint', 'ttattribution')(exprs)) }}{% endmacro %}
{% macro default__fingerprint(exprs) %}hash({{ exprs | join(', ') }}){% endmacro %}
{% macro postgres__fingerprint(exprs) -%}
    hashtextextended(concat_ws(chr(31), {% for e in exprs %}coalesce(cast({{ e }} as text), chr(30)){% if not loop.last %}, {% endif %}{% endfor %}), 0)
{%- endmacro %}
