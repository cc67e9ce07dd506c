"""Stripe's Events API pull (asset and schedule) and the history backfill (job with a start date)."""

import os
from datetime import date

import dagster as dg
from pydantic import Field

from ingestion.stripe_pull import BACKFILL_RESOURCES, StripePullError, backfill, describe_gap, pull_events
from orchestration.defs.ingestion import STRIPE_PULL_KEY as PULL_KEY
from orchestration.resources import LandingZoneResource, StripeResource


@dg.asset(
    key=PULL_KEY,
    group_name="ingestion",
    kinds={"stripe"},
    owners=["team:data-platform"],
    tags={"layer": "landing"},
    # Stripe's own 429s and 5xx are retried inside the pull; this covers a pull that gave up on an outage
    retry_policy=dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=[
        dg.AssetCheckSpec(
            "no_retention_gap",
            asset=PULL_KEY,
            description="No stretch of events older than Stripe's 30-day retention "
            "was missed without a backfill covering it.",
        )
    ],
    description="New events from Stripe's GET /v1/events since the durable cursor (with an overlap, "
    "deduplicated by event id) landed in $LANDING_DIR/stripe_events/pull. Skipped when "
    "STRIPE_API_KEY is not set.",
)
def stripe_events_pull(context: dg.AssetExecutionContext, stripe: StripeResource, landing_zone: LandingZoneResource):
    settings = stripe.settings(landing_zone.resolved_path)
    if settings is None:
        context.log.info("STRIPE_API_KEY is not set: the Stripe pull is skipped (webhooks and files still load)")
        yield dg.MaterializeResult(metadata={"skipped": "STRIPE_API_KEY is not set"})
        yield dg.AssetCheckResult(
            check_name="no_retention_gap", passed=True, metadata={"skipped": "STRIPE_API_KEY is not set"}
        )
        return
    try:
        result = pull_events(settings)
    except StripePullError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(
        f"listed {result.events_listed} events, landed {result.events_written}, skipped "
        f"{result.duplicates_skipped} already landed; {result.requests} requests, "
        f"{result.retries} retried"
    )
    for gap in result.open_gaps:
        context.log.error(describe_gap(gap))
    yield dg.MaterializeResult(
        metadata={
            "events_listed": result.events_listed,
            "events_landed": result.events_written,
            "already_landed_skipped": result.duplicates_skipped,
            "invoice_lines_completed": result.invoice_lines_completed,
            "requests": result.requests,
            "retries": result.retries,
            "files": len(result.files),
            "cursor": dg.MetadataValue.timestamp(float(result.cursor_after)) if result.cursor_after else "none",
        }
    )
    yield dg.AssetCheckResult(
        check_name="no_retention_gap",
        passed=not result.open_gaps,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "open_gaps": len(result.open_gaps),
            "what_to_do": "\n".join(describe_gap(g) for g in result.open_gaps) or "nothing",
        },
    )


class BackfillConfig(dg.Config):
    start_date: str = Field(description="YYYY-MM-DD (UTC): objects created on or after this day")
    end_date: str | None = Field(default=None, description="YYYY-MM-DD, exclusive (default: now)")
    resources: list[str] = Field(default=list(BACKFILL_RESOURCES), description="which object lists")


@dg.op(out={}, description="Lands Stripe objects created in [start_date, end_date) from the list endpoints as events.")
def stripe_backfill_op(
    context: dg.OpExecutionContext, config: BackfillConfig, stripe: StripeResource, landing_zone: LandingZoneResource
):
    try:
        start = date.fromisoformat(config.start_date)
        end = date.fromisoformat(config.end_date) if config.end_date else None
    except ValueError:
        raise dg.Failure(
            description=f"start_date and end_date are YYYY-MM-DD; got {config.start_date!r} and {config.end_date!r}"
        ) from None
    settings = stripe.settings(landing_zone.resolved_path)
    if settings is None:
        raise dg.Failure(description="STRIPE_API_KEY is not set: the backfill needs a key with read access")
    try:
        result = backfill(settings, start, end, resources=tuple(config.resources))
    except StripePullError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"backfilled {result.objects}; {result.events_written} events in {len(result.files)} files")
    yield dg.AssetObservation(
        asset_key=PULL_KEY,
        metadata={
            "backfill_start": config.start_date,
            "backfill_events": result.events_written,
            "gaps_closed": len(result.gaps_closed),
            **{f"backfilled_{k}": v for k, v in result.objects.items()},
        },
    )


@dg.job(
    description="Backfill Stripe history older than the Events API's 30 days from the list endpoints. "
    "The landing-zone sensor then loads what it landed."
)
def stripe_backfill():
    stripe_backfill_op()


stripe_pull_job = dg.define_asset_job(
    "stripe_pull",
    selection=dg.AssetSelection.assets(PULL_KEY),
    description="Pull new Stripe events into the landing zone.",
)

stripe_pull_schedule = dg.ScheduleDefinition(
    name="stripe_pull_every_15_minutes",
    job=stripe_pull_job,
    cron_schedule="*/15 * * * *",
    default_status=(
        dg.DefaultScheduleStatus.RUNNING if os.environ.get("STRIPE_API_KEY") else dg.DefaultScheduleStatus.STOPPED
    ),
    description="Pulls new Stripe events; on by default when STRIPE_API_KEY is set.",
)


defs = dg.Definitions(
    assets=[stripe_events_pull], jobs=[stripe_backfill, stripe_pull_job], schedules=[stripe_pull_schedule]
)
