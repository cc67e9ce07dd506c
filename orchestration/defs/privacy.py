"""Erasure on request: the job `forget` carries out every request queued by `python -m orchestration.forget`
(see orchestration/forget.py; identifiers never go into a run's config, which Dagster keeps)."""

import dagster as dg

from orchestration.defs.ingestion import RAW_KEYS, WAREHOUSE_POOL
from orchestration.forget import process_requests
from orchestration.publish import spare_path
from orchestration.resources import LandingZoneResource, WarehouseResource


@dg.op(
    pool=WAREHOUSE_POOL,
    description="Erase each queued person from landing files, raw tables, the quarantine, "
    "the ledger's payloads and the snapshot; drop the models built from them.",
)
def erase_requested_people(
    context: dg.OpExecutionContext, warehouse: WarehouseResource, landing_zone: LandingZoneResource
) -> None:
    with warehouse.connect() as con:
        records = process_requests(con, landing_zone.resolved_path)
    if records:
        # the analysts' copy holds them too: gone now (a connection already open keeps what it opened until it
        # closes); the next build publishes it again without them
        warehouse.resolved_analytics_path.unlink(missing_ok=True)
        spare_path(warehouse.resolved_analytics_path).unlink(missing_ok=True)
    for record in records:
        # counts and hashes only: the log is kept in Dagster's storage
        context.log.info(
            "erasure "
            + ", ".join(f"{k}={v}" for k, v in record.items() if k not in ("identifiers_sha256", "requested_at"))
        )
    if records:
        # the raw tables changed: the automation sensor rebuilds what depends on them (in full: the build state
        # was forgotten with the dropped models)
        for key in RAW_KEYS:
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=key, description="rows erased on request", metadata={"erasures": len(records)}
                )
            )


@dg.job(
    description="Carry out the queued erasure requests (GDPR art. 17); `python -m orchestration.forget` queues "
    "one and runs this, then the pipeline."
)
def forget():
    erase_requested_people()


defs = dg.Definitions(jobs=[forget])
