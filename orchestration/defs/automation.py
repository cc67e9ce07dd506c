"""The pipeline job and the landing-zone sensor that starts it when new files appear."""

import hashlib
import json

import dagster as dg
import duckdb

from ingestion.durable import recover_orphans
from ingestion.landing import SOURCES, list_landing_files
from orchestration.resources import LandingZoneResource, WarehouseResource

# In-process: every step writes the one DuckDB file, so steps run one after another in one process; the
# `warehouse` pool (limit 1 in dagster.yaml) also queues the steps of runs started at the same time.
pipeline_job = dg.define_asset_job(
    "pipeline", selection=dg.AssetSelection.all(), executor_def=dg.in_process_executor,
    description="Load new landing files, build the dbt models, record TikTok deliveries.",
)


def _landing_snapshot(landing_zone: LandingZoneResource) -> dict[str, float]:
    root = landing_zone.resolved_path
    for source in SOURCES:
        # a receiver or collector killed without shutting down left acknowledged events in a hidden segment:
        # publishing it here makes it a landing file like any other, so it starts a run
        recover_orphans(root / source)
    return {p.relative_to(root).as_posix(): p.stat().st_mtime
            for source in SOURCES for p in list_landing_files(root, source)}


@dg.sensor(job=pipeline_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts the pipeline when files appear in the landing zone that no run has seen.")
def landing_zone_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource,
                        warehouse: WarehouseResource) -> dg.SensorResult:
    # The cursor holds a digest of the files already requested, so a file is asked for once even if
    # the run that loads it is still queued; files the warehouse already loaded never start a run.
    seen: set[str] = set(json.loads(context.cursor)) if context.cursor else set()
    files = _landing_snapshot(landing_zone)
    loaded: set[str] = set()
    if warehouse.resolved_path.exists():
        try:
            with duckdb.connect(str(warehouse.resolved_path), read_only=True) as con:
                if con.execute("select count(*) from information_schema.tables where table_schema = 'raw' "
                               "and table_name = 'loaded_files'").fetchall()[0][0]:
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


defs = dg.Definitions(jobs=[pipeline_job], sensors=[landing_zone_sensor])
