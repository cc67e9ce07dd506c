{# json_text_refs(['a.b', 'c']) -> {'a.b': 'f[1]', 'c': 'f[2]'}: each path's place in the list that
   json_texts(column, paths) builds as `f`, so a model parses its JSON once and reads the fields by name. #}
{% macro json_text_refs(paths, list_name='f') %}
    {%- set refs = {} -%}
    {%- for p in paths %}{% do refs.update({p: list_name ~ '[' ~ loop.index ~ ']'}) %}{% endfor -%}
    {{ return(refs) }}
{% endmacro %}
