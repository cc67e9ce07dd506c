{# Functions PostgreSQL lacks, created before every build (on-run-start; nothing on DuckDB). #}
{% macro create_functions() %}{{ return(adapter.dispatch('create_functions', 'ttattribution')()) }}{% endmacro %}
{% macro default__create_functions() %}select 1{% endmacro %}
{% macro postgres__create_functions() %}
create schema if not exists ttattr_functions;
-- percent-decoding as DuckDB's url_decode does it (the caller turns '+' into ' ' first); null for a malformed
-- escape or bytes that are not UTF-8, never an error
create or replace function ttattr_functions.url_decode(t text) returns text language plpgsql immutable strict as $fn$
declare
    out bytea := '';
    i integer := 1;
    n integer := length(t);
    c text;
begin
    while i <= n loop
        c := substr(t, i, 1);
        if c = '%' then
            if substr(t, i + 1, 2) !~ '^[0-9A-Fa-f]{2}$' then return null; end if;
            out := out || decode(substr(t, i + 1, 2), 'hex');
            i := i + 3;
        else
            out := out || convert_to(c, 'UTF8');
            i := i + 1;
        end if;
    end loop;
    return convert_from(out, 'UTF8');
exception when others then
    return null;
end
$fn$
{% endmacro %}
