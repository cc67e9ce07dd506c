"""Landing zone -> raw warehouse tables."""

import dagster as dg

from ingestion import postgres_loader
from ingestion.landing import STRIPE_DIR, TRACKING_DIR
from ingestion.loader import load_source
from orchestration.resources import LandingZoneResource, WarehouseResource

WAREHOUSE_POOL = "warehouse"
# the Stripe pull lands files this asset loads (orchestration/defs/stripe.py)
STRIPE_PULL_KEY = dg.AssetKey(["landing", "stripe_events_pull"])


def _load(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    landing_zone: LandingZoneResource,
    source: str,
    table: str,
) -> dg.MaterializeResult:
    postgres = warehouse.postgres
    if postgres is not None:  # COPY in batches, each in a transaction of its own (ingestion/postgres_loader.py)
        with postgres.connection() as pg:
            result = postgres_loader.load_source(pg, landing_zone.resolved_path, source)
    with warehouse.connect() as con:
        if postgres is None:
            result = load_source(con, landing_zone.resolved_path, source)
        total = con.execute(f"select count(*) from raw.{table}").fetchall()[0][0]
        quarantined = con.execute("select count(*) from raw.quarantine where source = ?", [source]).fetchall()[0][0]
    context.log.info(
        f"{source}: {result.files} new files, {result.loaded_rows} new rows, "
        f"{result.duplicate_rows} duplicates skipped, {result.quarantined_rows} lines quarantined"
    )
    return dg.MaterializeResult(
        metadata={
            "new_files": result.files,
            "new_rows": result.loaded_rows,
            "duplicates_skipped": result.duplicate_rows,
            "lines_quarantined": result.quarantined_rows,
            "dagster/row_count": total,
            "quarantine_total": quarantined,
        }
    )


@dg.asset(
    key=["raw", "stripe_events"],
    deps=[STRIPE_PULL_KEY],
    group_name="ingestion",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "stripe"},
    owners=["team:data-platform"],
    tags={"layer": "raw"},
    description="Stripe events from $LANDING_DIR/stripe_events, each file once, each event id once; "
    "malformed lines go to raw.quarantine.",
)
def raw_stripe_events(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing_zone: LandingZoneResource
) -> dg.MaterializeResult:
    return _load(context, warehouse, landing_zone, STRIPE_DIR, "stripe_events")


@dg.asset(
    key=["raw", "tracking_events"],
    group_name="ingestion",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    owners=["team:data-platform"],
    tags={"layer": "raw"},
    description="Tracking events from $LANDING_DIR/tracking, each file once, each messageId once; "
    "malformed lines go to raw.quarantine.",
)
def raw_tracking_events(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing_zone: LandingZoneResource
) -> dg.MaterializeResult:
    return _load(context, warehouse, landing_zone, TRACKING_DIR, "tracking_events")


# the raw tables the loaders write (what the landing sensor runs, and what an erasure changes)
RAW_KEYS = [raw_stripe_events.key, raw_tracking_events.key]

defs = dg.Definitions(assets=[raw_stripe_events, raw_tracking_events])
