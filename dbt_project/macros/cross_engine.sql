{# SQL that differs between engines. Each macro has a DuckDB (default) and a PostgreSQL implementation. #}

{# json_text('payload', 'data.object.lines.data[0].id') -> the value at that path as text #}
{% macro json_text(column, path) %}{{ return(adapter.dispatch('json_text', 'ttattribution')(column, path)) }}{% endmacro %}
{% macro default__json_text(column, path) %}json_extract_string({{ column }}, '$.{{ path }}'){% endmacro %}
{% macro postgres__json_text(column, path) -%}
    {%- set parts = path | replace('[', '.') | replace(']', '') -%}
    ({{ column }} #>> '{ {{- parts.split('.') | join(',') -}} }')
{%- endmacro %}

{# json_texts('payload', ['a.b', 'c']) -> an array of the values at those paths as text, indexed from 1. The JSON
   is parsed once for all the paths: on DuckDB that is several times faster than one json_text per path. #}
{% macro json_texts(column, paths) %}{{ return(adapter.dispatch('json_texts', 'ttattribution')(column, paths)) }}{% endmacro %}
{% macro default__json_texts(column, paths) -%}
    json_extract_string({{ column }}, [{% for p in paths %}'$.{{ p }}'{% if not loop.last %}, {% endif %}{% endfor %}])
{%- endmacro %}
{% macro postgres__json_texts(column, paths) -%}
    array[{% for p in paths %}{{ postgres__json_text(column, p) }}{% if not loop.last %}, {% endif %}{% endfor %}]
{%- endmacro %}

{% macro epoch_to_timestamp(expr) %}{{ return(adapter.dispatch('epoch_to_timestamp', 'ttattribution')(expr)) }}{% endmacro %}
{# Total: null, never an error, for text that is not an integer or seconds outside the timestamp range. #}
{% macro default__epoch_to_timestamp(expr) %}try(make_timestamp(try_cast({{ expr }} as bigint) * 1000000)){% endmacro %}
{% macro postgres__epoch_to_timestamp(expr) -%}
    (case when {{ postgres__safe_cast(expr, 'bigint') }} between -62135596800 and 253402300799
          then to_timestamp(cast({{ expr }} as bigint)) at time zone 'UTC' end)
{%- endmacro %}

{# safe_cast(expr, 'bigint') -> the value as that type, or null when it is not one (never an error): every
   expression over landed data is total. Types: bigint, integer, double. #}
{% macro safe_cast(expr, type) %}{{ return(adapter.dispatch('safe_cast', 'ttattribution')(expr, type)) }}{% endmacro %}
{% macro default__safe_cast(expr, type) %}try_cast({{ expr }} as {{ type }}){% endmacro %}
{% macro postgres__safe_cast(expr, type) -%}
    {%- set pattern = "'^\s*-?[0-9]{1,18}\s*$'" if type in ('bigint', 'integer') else "'^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?\s*$'" -%}
    (case when cast({{ expr }} as text) ~ {{ pattern }} then cast(cast({{ expr }} as text) as {{ type }}) end)
{%- endmacro %}

{% macro iso_to_timestamp(expr) %}{{ return(adapter.dispatch('iso_to_timestamp', 'ttattribution')(expr)) }}{% endmacro %}
{# Total: null, never an error, for text that is not an ISO-8601 time a timestamp can hold. #}
{% macro default__iso_to_timestamp(expr) %}try(try_cast({{ expr }} as timestamptz) at time zone 'UTC'){% endmacro %}

{% macro regex_matches(expr, pattern) %}{{ return(adapter.dispatch('regex_matches', 'ttattribution')(expr, pattern)) }}{% endmacro %}
{% macro default__regex_matches(expr, pattern) %}regexp_matches({{ expr }}, {{ pattern }}){% endmacro %}
{% macro postgres__regex_matches(expr, pattern) %}({{ expr }} ~ {{ pattern }}){% endmacro %}

{% macro regex_extract(expr, pattern) %}{{ return(adapter.dispatch('regex_extract', 'ttattribution')(expr, pattern)) }}{% endmacro %}
{% macro default__regex_extract(expr, pattern) %}nullif(regexp_extract({{ expr }}, {{ pattern }}, 1), ''){% endmacro %}
{% macro postgres__regex_extract(expr, pattern) %}nullif(substring({{ expr }} from {{ pattern }}), ''){% endmacro %}

{% macro url_decode(expr) %}{{ return(adapter.dispatch('url_decode', 'ttattribution')(expr)) }}{% endmacro %}
{# Total: a malformed percent-encoding (or one that decodes to invalid UTF-8) is null, never an error. #}
{% macro default__url_decode(expr) %}try(url_decode(replace({{ expr }}, '+', ' '))){% endmacro %}
{% macro postgres__url_decode(expr) %}replace({{ expr }}, '+', ' '){% endmacro %}

{% macro digits_only(expr) %}{{ return(adapter.dispatch('digits_only', 'ttattribution')(expr)) }}{% endmacro %}
{% macro default__digits_only(expr) %}regexp_replace({{ expr }}, '[^0-9]', '', 'g'){% endmacro %}

{# Whether a text (or JSON) value contains a literal string: a cheap filter before parsing JSON. #}
{% macro text_contains(expr, needle) %}{{ return(adapter.dispatch('text_contains', 'ttattribution')(expr, needle)) }}{% endmacro %}
{% macro default__text_contains(expr, needle) %}contains(cast({{ expr }} as varchar), {{ literal(needle) }}){% endmacro %}
{% macro postgres__text_contains(expr, needle) %}(strpos(cast({{ expr }} as text), {{ literal(needle) }}) > 0){% endmacro %}

{% macro md5_hex(expr) %}md5({{ expr }}){% endmacro %}

{# A set-returning expression for the select list: one row per element of the JSON array at `path`. #}
{% macro json_array_elements(column, path) %}{{ return(adapter.dispatch('json_array_elements', 'ttattribution')(column, path)) }}{% endmacro %}
{% macro default__json_array_elements(column, path) %}unnest(json_extract({{ column }}, '$.{{ path }}[*]')){% endmacro %}
{% macro postgres__json_array_elements(column, path) -%}
    jsonb_array_elements({{ column }} #> '{ {{- path.split('.') | join(',') -}} }')
{%- endmacro %}

{# Seconds from one timestamp to a later one, as a number. #}
{% macro datediff_seconds(start, end) %}{{ return(adapter.dispatch('datediff_seconds', 'ttattribution')(start, end)) }}{% endmacro %}
{% macro default__datediff_seconds(start, end) %}(epoch({{ end }}) - epoch({{ start }})){% endmacro %}
{% macro postgres__datediff_seconds(start, end) %}extract(epoch from ({{ end }} - {{ start }})){% endmacro %}

{# A quoted SQL string literal. #}
{% macro literal(value) %}'{{ value | string | replace("'", "''") }}'{% endmacro %}

{# The rows of a small seed read while the model compiles, so its values can be written into the SQL as constants
   (a regular expression given as a constant is compiled once; one read from a table is compiled for every row it
   meets: 180 times slower over 300,000 identifiers). None when the seed cannot be read as itself: at parse time,
   before the seed is built, or in a unit test (which gives the seed's rows as fixtures); the caller then joins
   the table as usual. #}
{% macro seed_rows(seed_name, columns) %}
    {%- if not execute or model.resource_type == 'unit_test' -%}{{ return(none) }}{%- endif -%}
    {%- set relation = ref(seed_name) -%}
    {%- if adapter.get_relation(relation.database, relation.schema, relation.identifier) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set result = run_query('select ' ~ columns | join(', ') ~ ' from ' ~ relation ~ ' order by ' ~ columns | join(', ')) -%}
    {{ return(result.rows | list) }}
{% endmacro %}

{# json_text_refs(['a.b', 'c']) -> {'a.b': 'f[1]', 'c': 'f[2]'}: each path's place in the list that
   json_texts(column, paths) builds as `f`, so a model parses its JSON once and reads the fields by name. #}
{% macro json_text_refs(paths, list_name='f') %}
    {%- set refs = {} -%}
    {%- for p in paths %}{% do refs.update({p: list_name ~ '[' ~ loop.index ~ ']'}) %}{% endfor -%}
    {{ return(refs) }}
{% endmacro %}

{# The loads of `source_relation` that `this` (an incremental model) has not taken in yet, as a condition on the
   source's `_loaded_at`: the loader writes each batch of files in one transaction, all its rows with one
   `_loaded_at`, so a load is either wholly staged or not at all. The loads are listed while the model runs and
   written into the SQL as constants, so the source is read only for them: the raw rows of staged loads are
   skipped unread (their row groups' min/max rule them out), and nothing compares every new id with every
   staged one. Loads newer than a day before the newest staged one are considered, so a load that committed late
   with an earlier clock is still taken in. `false` when there is nothing new. #}
{% macro unstaged_loads(source_relation, source_loaded_at='_loaded_at', staged_loaded_at='loaded_at') %}
    {%- if not execute -%}{{ return('true') }}{%- endif -%}
    {%- set since -%}
        (select coalesce(max({{ staged_loaded_at }}), cast('1970-01-01' as timestamp)) - interval '1 day' from {{ this }})
    {%- endset -%}
    {%- set result = run_query(
        'select distinct cast(' ~ source_loaded_at ~ ' as varchar) from ' ~ source_relation
        ~ ' where ' ~ source_loaded_at ~ ' >= ' ~ since
        ~ ' except select distinct cast(' ~ staged_loaded_at ~ ' as varchar) from ' ~ this
        ~ ' where ' ~ staged_loaded_at ~ ' >= ' ~ since ~ ' order by 1') -%}
    {%- set loads = result.columns[0].values() | list -%}
    {%- if not loads -%}{{ return('false') }}{%- endif -%}
    {%- set constants = [] -%}
    {%- for load in loads %}{% do constants.append("cast('" ~ load ~ "' as timestamp)") %}{% endfor -%}
    {{ return(source_loaded_at ~ ' in (' ~ constants | join(', ') ~ ')') }}
{% endmacro %}

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

{# The body of a staging model of one row per Stripe object of `object_type`: the object states (only the new
   ones in an incremental run, see new_object_states), each payload parsed once for `paths` under data.object into
   the list `f` (read it by name with json_text_refs(paths)). #}
{% macro stripe_object_states(object_type, paths) %}
    {%- set object_paths = [] %}{% for p in paths %}{% do object_paths.append('data.object.' ~ p) %}{% endfor %}
    select *, {{ json_texts('payload', object_paths) }} as f
    from {{ ref('stg_stripe__object_states') }}
    where object_type = {{ literal(object_type) }}{{ new_object_states() }}
{%- endmacro %}

{# fingerprint(['a', 'b']) -> a 64-bit hash of the values together, for telling whether the inputs of a row have
   changed since it was built. Combined over a group with bit_xor (order-free; on rows that are distinct). #}
{% macro fingerprint(exprs) %}{{ return(adapter.dispatch('fingerprint', 'ttattribution')(exprs)) }}{% endmacro %}
{% macro default__fingerprint(exprs) %}hash({{ exprs | join(', ') }}){% endmacro %}
{% macro postgres__fingerprint(exprs) -%}
    hashtextextended(concat_ws(chr(31), {% for e in exprs %}coalesce(cast({{ e }} as text), chr(30)){% if not loop.last %}, {% endif %}{% endfor %}), 0)
{%- endmacro %}

{# In an incremental model whose rows keep `inputs_fingerprint`: ` where ...` keeping only the rows of `alias`
   whose key is new or whose fingerprint differs from the one built (empty in a full build). #}
{% macro where_inputs_changed(alias, key) %}
    {%- if is_incremental() -%}
    where not exists (select 1 from {{ this }} as built
                      where built.{{ key }} = {{ alias }}.{{ key }}
                        and built.inputs_fingerprint = {{ alias }}.inputs_fingerprint)
    {%- endif -%}
{% endmacro %}
