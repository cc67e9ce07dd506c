-- Every identity edge the stitch did not use, and why: a blocked value, a shared browser, a shared email.
-- Analysts read this to see which merges were refused; the guards are vars and a seed, so a refusal that
-- turns out wrong is fixed by configuration, not code.
with edges as (
    select * from {{ ref('int_identity_edges') }}
),

final as (
    select
        left_node,
        right_node,
        left_type,
        right_type,
        edge_source,
        unused_reason,
        refused_node,
        first_seen_at,
        last_seen_at,
        times_seen
    from edges
    where not is_used
)

select * from final
