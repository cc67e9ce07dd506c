"""How the pipeline runs by itself: the landing-zone sensor starts one run that loads new files and carries them
through dbt, the TikTok delivery and the analysts' copy; declarative automation builds what other changes feed
(an erasure, a Stripe pull's files); `pipeline` runs everything at once (make run, the demo)."""

import hashlib
import json
import time

import dagster as dg
import duckdb

from ingestion.durable import recover_orphans
from ingestion.landing import SOURCES, landing_files_since
from orchestration.defs.ingestion import STRIPE_PULL_KEY
from orchestration.defs.publishing import INGEST_JOB
from orchestration.defs.tiktok_ads import SPEND_KEY
from orchestration.resources import LandingZoneResource, WarehouseResource
from orchestration.warehouse_lock import read_only

# In-process: every step writes the one DuckDB file, so steps run one after another in one process; the
# `warehouse` pool (limit 1 in dagster.yaml) also queues the steps of runs started at the same time.
# The TikTok spend is partitioned by day and pulled by its own schedule (orchestration/defs/tiktok_ads.py): the
# models over it read whatever days are there.
pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(SPEND_KEY),
    executor_def=dg.in_process_executor,
    description="Pull Stripe, load new landing files, build the dbt models, record TikTok deliveries.",
)

# One run from a landing file to TikTok: waiting for the automation sensor's next tick and a second run launch cost
# a purchase tens of seconds on its way to TikTok. Everything but the Stripe pull (which has its own schedule): the
# dbt selection is then the `pipeline` job's, so both share one build state, and dbt's incremental models take only
# the new loads (seeds are loaded again only when the project changed).
ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(STRIPE_PULL_KEY, SPEND_KEY),
    executor_def=dg.in_process_executor,
    description="Load new landing files and carry them through dbt, the TikTok delivery and the analysts' copy.",
    # a run that dies (killed worker, lost node) is started again; a failing step is not (it would fail again)
    tags={"dagster/max_retries": "2", "dagster/retry_on_asset_or_op_failure": "false"},
)

# Every dbt model and the TikTok delivery carry AutomationCondition.eager(): once the raw tables change, the
# models downstream of them are built, then the delivery runs. This sensor evaluates those conditions.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags={"dagster/max_retries": "2", "dagster/retry_on_asset_or_op_failure": "false"},
    description="Builds whatever is downstream of new data: staging, identity, attribution, then activation.",
)


def _landing_snapshot(landing_zone: LandingZoneResource, after: float) -> dict[str, float]:
    """The landing files that became visible after ``after`` (a rename, such as publishing a segment or an orphan
    found after a crash, sets that time), with that time; folders unchanged since are not read."""
    root = landing_zone.resolved_path
    for source in SOURCES:
        # a receiver or collector killed without shutting down left acknowledged events in a hidden segment:
        # publishing it here makes it a landing file like any other, so it starts a run
        recover_orphans(root / source)
    return {
        p.relative_to(root).as_posix(): visible
        for source in SOURCES
        for p, visible in landing_files_since(root, source, after or None).items()
    }


# The sensor's cursor: a watermark (every landing file visible before it is loaded) and the digests of the files
# after it that were requested or loaded. The watermark trails the clock by this much, so that a file whose
# visibility time is a little behind another's (two writers, two clocks) is still looked at.
CURSOR_SLACK_SECONDS = 300.0


def _read_cursor(cursor: str | None) -> tuple[float, set[str]]:
    if not cursor:
        return 0.0, set()
    state = json.loads(cursor)
    if isinstance(state, list):  # the cursor of earlier versions: every digest ever requested
        return 0.0, set(state)
    return float(state["after"]), set(state["seen"])


def _loaded_among(warehouse: WarehouseResource, files: list[str], after: float) -> set[str] | None:
    """Which of ``files`` (visible after ``after``) the warehouse has loaded; None when it is busy (a run is writing
    it). A file is loaded after it became visible: only the loads since then are read."""
    if not warehouse.exists():
        return set()
    if warehouse.postgres is not None:
        with warehouse.connect() as con:
            return {
                r[0]
                for r in con.execute(
                    "select file from raw.loaded_files where loaded_at >= to_timestamp(?) at time zone 'UTC' "
                    "and file = any(?)",
                    [after - CURSOR_SLACK_SECONDS, files],
                ).fetchall()
            }
    with read_only(warehouse.resolved_path, "landing sensor") as con:
        if not con.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = 'loaded_files'"
        ).fetchall()[0][0]:
            return set()
        return {
            r[0]
            for r in con.execute(
                "select file from raw.loaded_files where loaded_at >= make_timestamp(?::bigint) "
                "and file in (select unnest(?::varchar[]))",
                [int((after - CURSOR_SLACK_SECONDS) * 1e6), files],
            ).fetchall()
        }


# Every 5 s, the daemon's own loop: a purchase waits for this tick on its way to TikTok. A tick reads only the
# landing folders changed since the watermark and, when there are new files, the warehouse's recent loads.
LANDING_SENSOR_INTERVAL_SECONDS = 5


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=LANDING_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts one run for files that appear in the landing zone and no run has seen: it loads them and "
    "carries them through dbt, the TikTok delivery and the analysts' copy.",
)
def landing_zone_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource, warehouse: WarehouseResource
) -> dg.SensorResult:
    # A file is asked for once even if the run that loads it is still queued (its digest is in the cursor); files
    # the warehouse already loaded never start a run. The cursor stays bounded: only files after its watermark
    # are looked at and remembered, and the watermark moves up to the oldest file not loaded yet.
    after, seen = _read_cursor(context.cursor)
    fresh = _landing_snapshot(landing_zone, after)
    try:
        # nothing new: the warehouse is not opened (a run starting then would find it held)
        loaded = _loaded_among(warehouse, sorted(fresh), after) if fresh else set()
    except duckdb.IOException:
        context.log.info("warehouse is busy (a run is writing it); judging by the cursor alone")
        loaded = None
    if loaded is not None:
        seen |= {_digest(f) for f in loaded}
    new = sorted(f for f in fresh if _digest(f) not in seen)
    waiting = _waiting_run(context) if new else None  # the instance is asked only when there is something new
    if waiting:
        # A run that has not started yet loads whatever is there when it does: no second run behind it. Under a
        # steady stream (a purchase every few seconds) runs would otherwise queue faster than they finish. The new
        # files are not remembered, so they are asked for again if that run's load began before they appeared.
        return dg.SensorResult(
            skip_reason=f"{len(new)} new landing file(s); run {waiting[:8]} has not started yet and will load them",
            cursor=context.cursor,
        )
    seen |= {_digest(f) for f in new}
    if loaded is not None:
        # every file visible before the new watermark is loaded; the files after it are remembered by digest
        waiting = [t for f, t in fresh.items() if f not in loaded]
        after = max(after, min([time.time() - CURSOR_SLACK_SECONDS, *(t - 1e-6 for t in waiting)]))
        seen &= {_digest(f) for f, t in fresh.items() if t > after}
    cursor = json.dumps({"after": after, "seen": sorted(seen)})
    if not new:
        return dg.SensorResult(skip_reason=f"no new landing files ({len(fresh)} since the watermark)", cursor=cursor)
    run_key = hashlib.sha256("\n".join(new).encode()).hexdigest()[:24]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"landing/new_files": str(len(new))})], cursor=cursor
    )


_NOT_STARTED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]


def _waiting_run(context: dg.SensorEvaluationContext) -> str | None:
    """The id of an ingest run requested but not started yet, if any (none known without an instance)."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a sensor evaluated on its own, as unit tests do
        return None
    runs = instance.get_runs(dg.RunsFilter(job_name=ingest_job.name, statuses=_NOT_STARTED), limit=1)
    return runs[0].run_id if runs else None


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:16]


defs = dg.Definitions(jobs=[pipeline_job, ingest_job], sensors=[landing_zone_sensor, automation_sensor])
