{# The pairs an incremental build of int_identity_edges deleted (rows without edge_source, deleted by the next
   post-hook), kept until the stitch has taken them in (apply_stitch_pending empties it): the stitch finds what
   changed from the edges' rows written since its last build, and a deleted pair leaves no row. #}
{% macro record_edges_gone(edges) %}
    create schema if not exists monitoring;
    create table if not exists monitoring.identity_edges_gone (left_node varchar, right_node varchar, gone_at timestamp);
    insert into monitoring.identity_edges_gone
    select left_node, right_node, {{ build_stamp() }} from {{ edges }} where edge_source is null
{% endmacro %}
