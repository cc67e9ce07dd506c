"""How the pipeline runs by itself: the landing-zone sensor loads new files, declarative automation carries the
change through dbt and the TikTok delivery, and `pipeline` runs everything at once (make run, the demo)."""

import hashlib
import json

import dagster as dg
import duckdb

from ingestion.durable import recover_orphans
from ingestion.landing import SOURCES, list_landing_files
from orchestration.defs.ingestion import RAW_KEYS
from orchestration.resources import LandingZoneResource, WarehouseResource
from orchestration.warehouse_lock import pipeline_use

# In-process: every step writes the one DuckDB file, so steps run one after another in one process; the
# `warehouse` pool (limit 1 in dagster.yaml) also queues the steps of runs started at the same time.
pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Pull Stripe, load new landing files, build the dbt models, record TikTok deliveries.",
)

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(*RAW_KEYS),
    executor_def=dg.in_process_executor,
    description="Load new landing files into the raw tables; automation takes it from there.",
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


def _landing_snapshot(landing_zone: LandingZoneResource) -> dict[str, float]:
    root = landing_zone.resolved_path
    for source in SOURCES:
        # a receiver or collector killed without shutting down left acknowledged events in a hidden segment:
        # publishing it here makes it a landing file like any other, so it starts a run
        recover_orphans(root / source)
    return {
        p.relative_to(root).as_posix(): p.stat().st_mtime
        for source in SOURCES
        for p in list_landing_files(root, source)
    }


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Loads files that appear in the landing zone and no run has seen (the automation sensor "
    "then builds what they feed).",
)
def landing_zone_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource, warehouse: WarehouseResource
) -> dg.SensorResult:
    # The cursor holds a digest of the files already requested, so a file is asked for once even if
    # the run that loads it is still queued; files the warehouse already loaded never start a run.
    seen: set[str] = set(json.loads(context.cursor)) if context.cursor else set()
    files = _landing_snapshot(landing_zone)
    loaded: set[str] = set()
    if warehouse.resolved_path.exists():
        try:
            with (
                pipeline_use(warehouse.resolved_path, "landing sensor"),
                duckdb.connect(str(warehouse.resolved_path), read_only=True) as con,
            ):
                if con.execute(
                    "select count(*) from information_schema.tables where table_schema = 'raw' "
                    "and table_name = 'loaded_files'"
                ).fetchall()[0][0]:
                    loaded = {r[0] for r in con.execute("select file from raw.loaded_files").fetchall()}
        except duckdb.IOException:
            context.log.info("warehouse is busy (a run is writing it); judging by the cursor alone")
    new = sorted(f for f in files if f not in loaded and _digest(f) not in seen)
    if not new:
        return dg.SensorResult(skip_reason=f"no new landing files ({len(files)} known)")
    run_key = hashlib.sha256("\n".join(new).encode()).hexdigest()[:24]
    seen |= {_digest(f) for f in new}
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"landing/new_files": str(len(new))})],
        cursor=json.dumps(sorted(seen)),
    )


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:16]


defs = dg.Definitions(jobs=[pipeline_job, ingest_job], sensors=[landing_zone_sensor, automation_sensor])
