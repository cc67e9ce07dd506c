"""Activation: attributed conversions -> the TikTok Events API, through the delivery ledger."""

from contextlib import ExitStack
from datetime import UTC, datetime

import dagster as dg
import duckdb
from dagster_dbt import get_asset_key_for_model

from orchestration.defs.dbt import dbt_models
from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.gctuning import frozen
from orchestration.resources import TikTokResource, WarehouseResource
from orchestration.warehouse_lock import read_only
from reverse_etl.candidates import checkout_waits_due
from reverse_etl.deliver import DeliveryStopped, deliver
from reverse_etl.ledger import retries_due, status_counts
from reverse_etl.postgres import deliver_postgres, pending_copy


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
    postgres = warehouse.postgres
    with warehouse.connect() as con:
        try:
            # what the process held before (all of Dagster) stays out of the passes the run's rows cause
            with frozen():
                if postgres is None:
                    result = deliver(con, settings, log=context.log.info)
                else:  # the pending conversions copied out, the same deliver, the ledger written back as it goes
                    with postgres.connection() as pg:
                        result = deliver_postgres(pg, settings, log=context.log.info)
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


tiktok_retry_job = dg.define_asset_job(
    "tiktok_retry",
    selection=dg.AssetSelection.assets(tiktok_deliveries),
    executor_def=dg.in_process_executor,
    description="The TikTok delivery alone: events that failed in a retryable way, sent again when they are due.",
)


@dg.sensor(
    job=tiktok_retry_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts the TikTok delivery when events that failed in a retryable way are due again "
    "(TIKTOK_RETRY_FIRST_WAIT_SECONDS after the run that failed them, doubling, at most "
    "TIKTOK_RETRY_MAX_WAIT_SECONDS), and when a subscription's first invoice has waited "
    "TIKTOK_CHECKOUT_SESSION_WAIT_SECONDS for its Checkout Session, whether or not new data arrived.",
)
def tiktok_retry_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, tiktok: TikTokResource
) -> dg.SensorResult:
    settings = tiktok.settings()
    if not warehouse.exists():
        return dg.SensorResult(skip_reason="no warehouse yet")
    now = datetime.now(UTC).replace(tzinfo=None)
    postgres = warehouse.postgres
    try:
        with ExitStack() as stack:
            if postgres is None:
                con = stack.enter_context(read_only(warehouse.resolved_path, "TikTok retry sensor"))
            else:  # what is pending, copied out as a delivery would (reverse_etl/postgres.py)
                con = stack.enter_context(pending_copy(stack.enter_context(postgres.connection())))
            due, newest = retries_due(
                con,
                now,
                settings.max_attempts_per_run,
                settings.retry_first_wait_seconds,
                settings.retry_max_wait_seconds,
            )
            held, newest_held = checkout_waits_due(con, now, settings.checkout_session_wait_seconds)
    except duckdb.IOException:
        return dg.SensorResult(skip_reason="the warehouse is busy (a run is writing it); next tick")
    except LookupError:  # PostgreSQL before the first build
        return dg.SensorResult(skip_reason="no TikTok conversions built yet")
    if not due and not held:
        return dg.SensorResult(skip_reason="no retryable TikTok deliveries due")
    # one run per state of the ledger (and of the invoices that waited for their Checkout Session): a later failure
    # makes a new key, a run already asked for is not asked again
    key = f"tiktok-retry-{newest.isoformat() if newest else '-'}-{due}"
    if held:
        key += f"-held-{newest_held.isoformat()}-{held}"
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=key, tags={"tiktok/due": str(due), "tiktok/held_due": str(held)})]
    )


defs = dg.Definitions(assets=[tiktok_deliveries], jobs=[tiktok_retry_job], sensors=[tiktok_retry_sensor])
