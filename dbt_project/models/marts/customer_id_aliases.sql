-- One row per customer id analysts may still hold that no longer names a customer of its own: an id merged into
-- another (why = merged; customer_id is the id in use now, following later merges too), or the id a part split
-- off from (why = split; customer_id is the new part's id, while the old id stays with the larger part).
-- Join a saved list of ids through it: `coalesce(aliases.customer_id, saved.customer_id)` for merged rows.
-- The changes are bookkeeping int_identity_components writes as it builds (monitoring.customer_id_changes: not a
-- model, so that full rebuilds keep it; not a dbt source either, since the model that writes it is upstream here).
-- depends_on: {{ ref('int_identity_components') }}
{%- set changes = api.Relation.create(schema='monitoring', identifier='customer_id_changes') %}
with recursive changes as (
    select old_customer_id, customer_id, changed_at, why from {{ changes }}
),

merges as (
    select old_customer_id, customer_id, changed_at from changes where why = 'merged'
),

-- follow each merged id through the merges after it, to the id in use now
chains (old_customer_id, customer_id, changed_at, depth) as (
    select old_customer_id, customer_id, changed_at, 1 from merges
    union all
    select chains.old_customer_id, merges.customer_id, chains.changed_at, chains.depth + 1
    from chains join merges on merges.old_customer_id = chains.customer_id and merges.changed_at >= chains.changed_at
    where chains.depth < 100
),

current_merges as (
    select old_customer_id, customer_id, changed_at, 'merged' as why
    from (select *, row_number() over (partition by old_customer_id order by depth desc) as rank from chains) as ranked
    where rank = 1
),

final as (
    select old_customer_id, customer_id, changed_at, why from current_merges
    union all
    select old_customer_id, customer_id, changed_at, why from changes where why = 'split'
)

select * from final
