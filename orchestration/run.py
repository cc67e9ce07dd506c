"""`make run`: materialise every asset once through Dagster (the path a schedule takes), headless.

The run is recorded in the Dagster instance ($DAGSTER_HOME), so it shows in the UI. Exits 1 if any step failed.
"""

import os
import sys

from orchestration.gctuning import collection_paused, freeze_before_exit

with collection_paused():  # see orchestration/gctuning.py
    import dagster as dg

    from orchestration.instance import get_instance


def run_pipeline(
    instance: dg.DagsterInstance | None = None, log_level: str = "INFO", defs: dg.Definitions | None = None
) -> dg.ExecuteInProcessResult:
    if defs is None:
        from orchestration.definitions import defs
    job = defs.resolve_job_def("pipeline")
    return job.execute_in_process(
        instance=instance or get_instance(),
        raise_on_error=False,
        tags={"trigger": "make run"},
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


def run_tiktok_spend(
    first_day: str,
    last_day: str,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
    defs: dg.Definitions | None = None,
) -> dg.ExecuteInProcessResult:
    """Pull TikTok's ad report for the days first_day..last_day (YYYY-MM-DD, inclusive) in one run, as a backfill
    of those partitions from the UI would."""
    if defs is None:
        from orchestration.definitions import defs
    from orchestration.defs.tiktok_ads import SPEND_JOB

    return defs.resolve_job_def(SPEND_JOB).execute_in_process(
        instance=instance or get_instance(),
        raise_on_error=False,
        tags={
            "trigger": "make run",
            "dagster/asset_partition_range_start": first_day,
            "dagster/asset_partition_range_end": last_day,
        },
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


def _report_failure(result: dg.ExecuteInProcessResult) -> None:
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    print(f"run {result.run_id} FAILED in: {', '.join(failed) or 'run setup'}", file=sys.stderr)
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE" and e.step_failure_data and e.step_failure_data.error:
            print(e.step_failure_data.error.to_string(), file=sys.stderr)


def main() -> int:
    from datetime import UTC, datetime

    from ingestion.tiktok_reporting import ReportingSettings
    from orchestration.defs.tiktok_ads import repull_range

    log_level = os.environ.get("DAGSTER_LOG_LEVEL", "INFO")
    spend = ReportingSettings.from_env()
    if spend.configured:  # the days the hourly schedule would take again, so a `make run` has today's spend
        first, last = repull_range(datetime.now(UTC).date(), spend.repull_days)
        pulled = run_tiktok_spend(first, last, log_level=log_level)
        if not pulled.success:
            _report_failure(pulled)
            return 1
        print(f"run {pulled.run_id} pulled TikTok's ad report for {first} to {last}")
    result = run_pipeline(log_level=log_level)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        rows = mat.metadata.get("dagster/row_count")
        print(
            f"  materialised {mat.asset_key.to_user_string():45s}" + (f" rows={rows.value}" if rows is not None else "")
        )
    if not result.success:
        _report_failure(result)
        return 1
    print(f"run {result.run_id} succeeded")
    return 0


if __name__ == "__main__":
    code = main()
    # What is left is the interpreter's teardown, whose collections walk every object once more: about a second of
    # every `make run` (1.1-1.2 s of a run with no new data). Frozen objects are skipped; exit handlers still run and
    # reference counting still frees what it frees (the run's storage and the warehouse were closed by the run).
    freeze_before_exit()
    raise SystemExit(code)
