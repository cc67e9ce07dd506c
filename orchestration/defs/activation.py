"""Activation: attributed conversions -> the TikTok delivery ledger."""

import dagster as dg

from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.resources import TikTokResource, WarehouseResource
from reverse_etl.deliver import DeliverySettings, record_deliveries
from reverse_etl.ledger import status_counts


@dg.asset(key=["reverse_etl", "tiktok_deliveries"], group_name="activation", pool=WAREHOUSE_POOL,
          deps=[dg.AssetKey(["marts", "tiktok_conversions"])], kinds={"duckdb", "python"},
          description="Every eligible conversion in the TikTok delivery ledger exactly once per event id. "
                      "Without TikTok credentials: hashed payloads recorded as dry_run, nothing sent.")
def tiktok_deliveries(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      tiktok: TikTokResource) -> dg.MaterializeResult:
    settings = DeliverySettings(access_token=tiktok.access_token, pixel_code=tiktok.pixel_code,
                                test_event_code=tiktok.test_event_code)
    if settings.dry_run:
        context.log.info("TIKTOK_ACCESS_TOKEN / TIKTOK_PIXEL_CODE not set: dry run, payloads recorded, nothing sent")
    with warehouse.connect() as con:
        result = record_deliveries(con, settings)
        counts = status_counts(con)
    context.log.info(f"recorded {result.recorded_dry_run} dry runs and {result.recorded_no_consent} "
                     f"no-consent events; {result.ineligible_not_recorded} ineligible left for later")
    return dg.MaterializeResult(metadata={
        "dry_run": result.dry_run,
        "recorded_dry_run": result.recorded_dry_run,
        "recorded_no_consent": result.recorded_no_consent,
        "ineligible_not_recorded": result.ineligible_not_recorded,
        **{f"ledger_{status}": n for status, n in counts.items()},
        "dagster/row_count": sum(counts.values()),
    })


defs = dg.Definitions(assets=[tiktok_deliveries])
