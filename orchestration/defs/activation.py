"""Activation: attributed conversions -> the TikTok Events API, through the delivery ledger."""

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from orchestration.defs.dbt import dbt_models
from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.gctuning import frozen
from orchestration.resources import TikTokResource, WarehouseResource
from reverse_etl.deliver import DeliveryStopped, deliver
from reverse_etl.ledger import status_counts


@dg.asset(
    key=["reverse_etl", "tiktok_deliveries"],
    group_name="activation",
    pool=WAREHOUSE_POOL,
    deps=[
        get_asset_key_for_model([dbt_models], "tiktok_conversions"),
        get_asset_key_for_model([dbt_models], "tiktok_conversion_contents"),
    ],
    kinds={"duckdb", "python", "tiktok"},
    owners=["team:activation"],
    tags={"layer": "reverse_etl"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Every eligible conversion sent to the TikTok Events API exactly once per event id, with the "
    "outcome in the delivery ledger. Without TikTok credentials: hashed payloads recorded as "
    "dry_run, nothing sent.",
)
def tiktok_deliveries(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, tiktok: TikTokResource
) -> dg.MaterializeResult:
    settings = tiktok.settings()
    if settings.dry_run:
        context.log.info("TIKTOK_ACCESS_TOKEN / TIKTOK_PIXEL_CODE not set: dry run, payloads recorded, nothing sent")
    with warehouse.connect() as con:
        try:
            # what the process held before (all of Dagster) stays out of the passes the run's rows cause
            with frozen():
                result = deliver(con, settings, log=context.log.info)
        except DeliveryStopped as stop:
            # not retried: a token or endpoint problem needs a person; the ledger already holds what was sent
            raise dg.Failure(
                description=str(stop),
                allow_retries=False,
                metadata={"ledger": dg.MetadataValue.json(status_counts(con))},
            ) from stop
        counts = status_counts(con)
    context.log.info("this run: " + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
    return dg.MaterializeResult(
        metadata={
            "dry_run": result.dry_run,
            "requests": result.requests,
            "seconds": round(result.seconds, 2),
            **{f"run_{k}": v for k, v in sorted(result.counts.items())},
            **{f"ledger_{status}": n for status, n in counts.items()},
            "dagster/row_count": sum(counts.values()),
        }
    )


defs = dg.Definitions(assets=[tiktok_deliveries])
