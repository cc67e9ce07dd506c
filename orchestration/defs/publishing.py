"""The analysts' copy: after a build, the marts, staging and the delivery ledger published to ANALYTICS_PATH."""

import json
import time

import dagster as dg
import duckdb

from orchestration.defs.activation import tiktok_deliveries
from orchestration.defs.dbt import dbt_models, dbt_project
from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.publish import PUBLISHED_SCHEMAS, publish, publish_from_postgres
from orchestration.resources import WarehouseResource

INGEST_JOB = "ingest"  # the landing sensor's job (orchestration/defs/automation.py)

# what the copy holds: every dbt model of the published schemas, and the ledger
PUBLISHED_DEPS = [key for key in dbt_models.keys if key.path[0] in PUBLISHED_SCHEMAS] + [tiktok_deliveries.key]


@dg.asset(
    key=["analytics", "published_copy"],
    group_name="publishing",
    pool=WAREHOUSE_POOL,
    deps=PUBLISHED_DEPS,
    kinds={"duckdb"},
    owners=["team:data-platform"],
    # what runs of the landing sensor left unpublished is published once none is in progress
    automation_condition=dg.AutomationCondition.eager(),
    output_required=False,
    description="A DuckDB file (ANALYTICS_PATH) of the marts, staging and the delivery ledger that analysts, "
    "notebooks and BI tools open instead of the warehouse: a run replaces it whole with a rename, so an open "
    "connection never blocks a run and the next connection sees the new build. Under a steady stream of data, "
    "published at most every ANALYTICS_PUBLISH_SECONDS.",
)
def published_copy(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    # A copy holds the warehouse for seconds (7-9 s at 1M events): in every run of a purchase every few seconds,
    # each next purchase would wait for it on its way to TikTok. Those runs publish once a minute; when they stop,
    # the automation sensor publishes what they left (this asset's eager condition).
    last = context.instance.get_latest_materialization_event(context.asset_key)
    age = time.time() - last.timestamp if last else None
    if context.job_name == INGEST_JOB and age is not None and age < warehouse.analytics_publish_seconds:
        context.log.info(
            f"the analysts' copy was published {age:.0f} s ago (ANALYTICS_PUBLISH_SECONDS="
            f"{warehouse.analytics_publish_seconds:g}): left to a later run or the automation"
        )
        return
    postgres = warehouse.postgres
    if postgres is not None:
        # copied whole from one consistent state of the database (orchestration/publish.py)
        with postgres.connection() as pg:
            result = publish_from_postgres(pg, warehouse.resolved_analytics_path)
        extra = {"source": warehouse.identity}
    else:
        changed = _changed_since_last_publish(context)
        manifest = json.loads(dbt_project.manifest_path.read_bytes())
        with warehouse.connect() as con:
            project = _built_project(con)
            # after a full rebuild (the dbt project changed) the rows of earlier loads may hold other values:
            # compared by key like any other table, not taken for unchanged
            published_project = last.asset_materialization.metadata.get("dbt_project") if last else None
            rebuilt = published_project is None or published_project.value != project
            result = publish(
                con,
                warehouse.resolved_analytics_path,
                changed=changed,
                append_only=frozenset() if rebuilt else _append_only_models(manifest),
                keys=_keys(con, manifest),
            )
        extra = {"from_spare": result.from_spare, "dbt_project": project}
    context.log.info(
        f"published {result.tables} relations, {result.rows} rows, to {result.path} in {result.seconds:.2f} s "
        f"({result.written} tables written, {result.appended} appended to, {result.patched} patched by key"
        + (", the rest kept from the last copy)" if postgres is None and changed is not None else ")")
    )
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "tables": result.tables,
            "dagster/row_count": result.rows,
            "bytes": result.bytes,
            "seconds": round(result.seconds, 2),
            "tables_written": result.written,
            "tables_appended": result.appended,
            "tables_patched": result.patched,
            **extra,
        }
    )


def _changed_since_last_publish(context: dg.AssetExecutionContext) -> set[tuple[str, str]] | None:
    """The published relations rebuilt since the copy was last published, from Dagster's materializations (a dbt
    build with nothing new materializes nothing); None when this instance never published (everything is written)."""
    last = context.instance.get_latest_materialization_event(context.asset_key)
    if last is None:
        return None
    changed: set[tuple[str, str]] = set()
    for key in PUBLISHED_DEPS:
        event = context.instance.get_latest_materialization_event(key)
        if event is not None and event.timestamp < last.timestamp:
            continue
        # the delivery writes every table of its schema (the ledger, the failure reviews)
        changed.add(("reverse_etl", "*") if key == tiktok_deliveries.key else (key.path[0], key.path[-1]))
    return changed


def _keys(con, manifest: dict) -> dict[tuple[str, str], str]:
    """A key column of each published table, for copying only the rows of keys that changed: a model's unique_key
    (incremental models, the snapshot), else a column with a `unique` test, else the table's primary key (the
    ledger's tables)."""
    keys: dict[tuple[str, str], str] = {}
    nodes = manifest["nodes"]
    for node in nodes.values():
        if node["resource_type"] == "test" and (node.get("test_metadata") or {}).get("name") == "unique":
            parent = nodes.get(node.get("attached_node") or "")
            if parent and node.get("column_name"):
                keys[(parent["config"].get("schema") or "main", parent["name"])] = node["column_name"]
    for node in nodes.values():
        unique_key = node["config"].get("unique_key")
        if node["resource_type"] in ("model", "snapshot") and isinstance(unique_key, str):
            keys[(node["config"].get("schema") or "main", node["name"])] = unique_key
    for schema, name, columns in con.execute(
        "select schema_name, table_name, constraint_column_names from duckdb_constraints() "
        "where constraint_type = 'PRIMARY KEY' and database_name = current_database()"
    ).fetchall():
        keys.setdefault((schema, name), columns[0])
    return keys


# raw tables the loader only ever appends to (`forget` deletes from them: the copy's count check then disagrees)
APPEND_ONLY_SOURCES = {"source.ttattribution.tracking.tracking_events", "source.ttattribution.stripe.stripe_events"}


def _append_only_models(manifest: dict) -> frozenset[tuple[str, str]]:
    """Models dbt only ever appends to (incremental_strategy append), and the views that read only those, seeds
    (which change with the project only) and the raw tables the loader appends to: a view over raw rows is copied
    as a table (the copy holds no raw table), and its rows too are only ever added."""
    nodes = manifest["nodes"]
    appended = {
        unique_id
        for unique_id, node in nodes.items()
        if node["resource_type"] == "model"
        and node["config"].get("materialized") == "incremental"
        and node["config"].get("incremental_strategy") == "append"
    }
    views = {
        unique_id: node["depends_on"]["nodes"]
        for unique_id, node in nodes.items()
        if node["resource_type"] == "model" and node["config"].get("materialized") == "view"
    }
    grew = True
    while grew:
        grew = False
        for unique_id, parents in views.items():
            if unique_id not in appended and all(
                p in appended or p in APPEND_ONLY_SOURCES or p.startswith("seed.") for p in parents
            ):
                appended.add(unique_id)
                grew = True
    return frozenset((nodes[u]["config"].get("schema") or "main", nodes[u]["name"]) for u in appended)


def _built_project(con) -> str | None:
    """The dbt project (models, macros, vars) the warehouse's models were last built with: a full rebuild follows
    any change to it (orchestration/defs/dbt.py)."""
    try:
        rows = con.execute("select project from monitoring.dbt_build_state order by built_at desc limit 1").fetchall()
    except duckdb.CatalogException:
        return None
    return rows[0][0] if rows else None


defs = dg.Definitions(assets=[published_copy])
