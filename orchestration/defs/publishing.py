"""The analysts' copy: after a build, the marts, staging and the delivery ledger published to ANALYTICS_PATH."""

import dagster as dg

from orchestration.defs.activation import tiktok_deliveries
from orchestration.defs.dbt import dbt_models
from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.publish import PUBLISHED_SCHEMAS, publish
from orchestration.resources import WarehouseResource

# what the copy holds: every dbt model of the published schemas, and the ledger
PUBLISHED_DEPS = [key for key in dbt_models.keys if key.path[0] in PUBLISHED_SCHEMAS] + [tiktok_deliveries.key]


@dg.asset(
    key=["analytics", "published_copy"],
    group_name="publishing",
    pool=WAREHOUSE_POOL,
    deps=PUBLISHED_DEPS,
    kinds={"duckdb"},
    owners=["team:data-platform"],
    automation_condition=dg.AutomationCondition.eager(),
    description="A DuckDB file (ANALYTICS_PATH) of the marts, staging and the delivery ledger that analysts, "
    "notebooks and BI tools open instead of the warehouse: a run replaces it whole with a rename, so an open "
    "connection never blocks a run and the next connection sees the new build.",
)
def published_copy(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        result = publish(con, warehouse.resolved_analytics_path)
    context.log.info(
        f"published {result.tables} tables, {result.rows} rows, to {result.path} in {result.seconds:.2f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "tables": result.tables,
            "dagster/row_count": result.rows,
            "bytes": result.bytes,
            "seconds": round(result.seconds, 2),
        }
    )


defs = dg.Definitions(assets=[published_copy])
