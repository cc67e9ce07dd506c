"""TikTok ad spend: the Marketing API's daily report by ad, one partition per day, re-pulled while TikTok revises it."""

from datetime import date, timedelta

import dagster as dg

from ingestion.tiktok_reporting import ReportingError, ReportingSettings, pull_days
from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.resources import TikTokAdsResource, WarehouseResource

SPEND_KEY = dg.AssetKey(["raw", "tiktok_ad_stats"])
SPEND_JOB = "tiktok_ad_spend"
# Partitions are the advertiser's report days. The first one is read when the definitions load (a partitions
# definition is fixed per code location); today is a partition too, its figures growing until the day is over.
PARTITIONS = dg.DailyPartitionsDefinition(start_date=ReportingSettings.from_env().start_date, end_offset=1)


@dg.asset(
    key=SPEND_KEY,
    partitions_def=PARTITIONS,
    # a backfill of many days is one run: the pull asks for up to 30 days a request instead of one request a day
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingestion",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "tiktok"},
    owners=["team:growth"],
    tags={"layer": "raw"},
    output_required=False,
    # TikTok's rate limits and outages are retried inside the pull; this covers a pull that gave up on an outage
    retry_policy=dg.RetryPolicy(max_retries=2, delay=120, backoff=dg.Backoff.EXPONENTIAL),
    description="Spend, impressions, clicks and TikTok's own attributed Complete Payments per ad and day from the "
    "Marketing API's report, for every advertiser in TIKTOK_ADVERTISER_IDS; a pull of a day replaces that day's "
    "rows. Skipped (nothing materialized) without TIKTOK_MARKETING_ACCESS_TOKEN and TIKTOK_ADVERTISER_IDS.",
)
def tiktok_ad_stats(context: dg.AssetExecutionContext, warehouse: WarehouseResource, tiktok_ads: TikTokAdsResource):
    settings = tiktok_ads.settings()
    if not settings.configured:
        context.log.info(
            "TIKTOK_MARKETING_ACCESS_TOKEN or TIKTOK_ADVERTISER_IDS is not set: the TikTok spend pull is skipped"
        )
        return
    days = [date.fromisoformat(key) for key in context.partition_keys]
    with warehouse.connect() as con:
        try:
            result = pull_days(con, settings, days)
        except ReportingError as exc:
            raise dg.Failure(description=str(exc), metadata={"tiktok_code": exc.code or 0}) from None
        spend = (
            "try_cast(json_extract_string(payload, '$.metrics.spend') as double)"
            if warehouse.postgres is None
            else "case when payload #>> '{metrics,spend}' ~ '^-{0,1}[0-9]+(\\.[0-9]+){0,1}$' "  # (no ? in our SQL)
            "then cast(payload #>> '{metrics,spend}' as float8) end"
        )
        stored = con.execute(
            f"select count(*), sum({spend}) "
            f"from {SPEND_KEY.path[0]}.{SPEND_KEY.path[1]} where stat_day between ? and ?",
            [days[0], days[-1]],
        ).fetchall()[0]
    context.log.info(
        f"{len(days)} days ({days[0]} to {days[-1]}) for {len(settings.advertiser_ids)} advertisers: "
        f"{result.rows} rows in {result.requests} requests, {result.retries} retried"
    )
    yield dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "requests": result.requests,
            "retries": result.retries,
            "advertisers": len(settings.advertiser_ids),
            "spend_in_these_days": round(stored[1] or 0.0, 2),
            **{f"rows_{adv}": n for adv, n in result.by_advertiser.items()},
        }
    )


tiktok_ad_spend_job = dg.define_asset_job(
    SPEND_JOB,
    selection=dg.AssetSelection.assets(SPEND_KEY),
    executor_def=dg.in_process_executor,
    description="Pull TikTok's daily ad report for the selected days (a backfill: any range, one run).",
)


def repull_range(today: date, repull_days: int) -> tuple[str, str]:
    """The partitions a scheduled pull takes: today and the days before it that TikTok may still revise."""
    return (today - timedelta(days=repull_days - 1)).isoformat(), today.isoformat()


@dg.schedule(
    job=tiktok_ad_spend_job,
    cron_schedule="17 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: today's spend so far and the last TIKTOK_REPORTING_REPULL_DAYS days again, which "
    "TikTok revises as late conversions are credited. Skipped without Marketing API credentials.",
)
def tiktok_ad_spend_schedule(context: dg.ScheduleEvaluationContext, tiktok_ads: TikTokAdsResource):
    settings = tiktok_ads.settings()
    if not settings.configured:
        return dg.SkipReason("TIKTOK_MARKETING_ACCESS_TOKEN or TIKTOK_ADVERTISER_IDS is not set")
    start, end = repull_range(context.scheduled_execution_time.date(), settings.repull_days)
    start = max(start, PARTITIONS.get_first_partition_key() or start)
    return dg.RunRequest(
        run_key=f"spend-{context.scheduled_execution_time.isoformat()}",
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
    )
