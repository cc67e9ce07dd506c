"""The project's own asset checks, and declarative automation carrying new raw data downstream."""

import shutil

import dagster as dg
import duckdb
import pytest

from orchestration.resources import (
    LandingZoneResource,
    StripeResource,
    TikTokAdsResource,
    TikTokResource,
    WarehouseResource,
)
from tests.conftest import load_defs


def _checks_run(warehouse, tmp_path):
    defs = load_defs(
        {
            "warehouse": WarehouseResource(path=str(warehouse)),
            "landing_zone": LandingZoneResource(path=str(tmp_path / "landing")),
            "tiktok": TikTokResource(),
            "stripe": StripeResource(),
            "tiktok_ads": TikTokAdsResource(),
        }
    )
    names = {"one_row_per_event_id", "no_unreviewed_permanent_failures", "quarantine_share_is_low", "match_rate_holds"}
    ours = dg.AssetSelection.checks(*[c for c in defs.resolve_asset_graph().asset_check_keys if c.name in names])
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[dg.define_asset_job("our_checks", selection=ours)]))
    with dg.instance_for_test() as instance:
        result = job.resolve_job_def("our_checks").execute_in_process(instance=instance, raise_on_error=False)
    return {e.asset_check_key.name + ":" + e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}


@pytest.mark.slow
def test_our_checks_pass_on_a_healthy_warehouse_and_catch_what_they_are_for(built_world, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(built_world.warehouse, warehouse)
    healthy = _checks_run(warehouse, tmp_path)
    assert set(healthy) == {
        "one_row_per_event_id:tiktok_deliveries",
        "no_unreviewed_permanent_failures:tiktok_deliveries",
        "quarantine_share_is_low:stripe_events",
        "quarantine_share_is_low:tracking_events",
        "match_rate_holds:attributed_purchases",
    }
    assert all(e.passed for e in healthy.values()), {k: e.metadata for k, e in healthy.items() if not e.passed}
    assert healthy["match_rate_holds:attributed_purchases"].metadata["match_rate"].value > 0.5

    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update reverse_etl.tiktok_deliveries set status = 'failed_permanent', last_code = 40002, "
            "last_message = 'invalid email' where event_id in (select event_id from "
            "reverse_etl.tiktok_deliveries limit 3)"
        )
        lines = con.execute("select sum(loaded_rows) from raw.loaded_files where source = 'tracking'").fetchall()[0][0]
        con.execute(
            "insert into raw.quarantine select 'tracking', 'bad.jsonl', range, 'not valid JSON', '{', now() "
            "from range(?)",
            [lines // 10],
        )
        con.execute(
            "update raw.loaded_files set quarantined_rows = quarantined_rows + ? "
            "where file = (select max(file) from raw.loaded_files where source = 'tracking')",
            [lines // 10],
        )
        # a tracker broke: the recent half of purchases lost their touches
        con.execute(
            "create or replace table marts.attributed_purchases as select * replace ("
            "case when purchased_at > (select max(purchased_at) - interval 15 days from marts.attributed_purchases) "
            "then null else first_touch_at end as first_touch_at) from marts.attributed_purchases"
        )
    broken = _checks_run(warehouse, tmp_path)
    failures = broken["no_unreviewed_permanent_failures:tiktok_deliveries"]
    assert not failures.passed and failures.metadata["unreviewed_events"].value == 3
    assert "40002" in failures.metadata["by_reason"].value
    assert not broken["quarantine_share_is_low:tracking_events"].passed
    assert broken["quarantine_share_is_low:stripe_events"].passed
    drop = broken["match_rate_holds:attributed_purchases"]
    assert not drop.passed and drop.severity == dg.AssetCheckSeverity.WARN
    assert broken["one_row_per_event_id:tiktok_deliveries"].passed

    from reverse_etl.cli import main as reverse_etl_main

    assert reverse_etl_main(["--warehouse", str(warehouse), "--review-failures", "ana@example.com"]) == 0
    reviewed = _checks_run(warehouse, tmp_path)
    assert reviewed["no_unreviewed_permanent_failures:tiktok_deliveries"].passed


def test_new_raw_data_is_carried_downstream_by_declarative_automation(workspace):
    """After the landing-zone sensor's ingest run updates a raw table, the automation sensor requests the dbt
    models that read it, and after them the TikTok delivery."""
    defs = workspace.defs()
    graph = defs.resolve_asset_graph()
    raw = dg.AssetKey(["raw", "tracking_events"])
    with dg.instance_for_test() as instance:
        for key in graph.get_all_asset_keys():  # an earlier full run built everything
            if graph.get(key).is_materializable:
                instance.report_runless_asset_event(dg.AssetMaterialization(key))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0, "nothing new, nothing to do"
        instance.report_runless_asset_event(dg.AssetMaterialization(raw))
        after_raw = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    requested = {
        k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable and after_raw.get_num_requested(k)
    }
    assert dg.AssetKey(["staging", "stg_tracking__events"]) in requested
    assert dg.AssetKey(["staging", "stg_stripe__invoices"]) not in requested, "only what the new data feeds"
    downstream_of_raw = graph.get(raw).child_keys
    assert downstream_of_raw <= requested | {k for k in downstream_of_raw if not graph.get(k).is_materializable}
    tiktok = graph.get(dg.AssetKey(["reverse_etl", "tiktok_deliveries"]))
    assert tiktok.automation_condition is not None
    assert defs.resolve_sensor_def("automation") and defs.resolve_sensor_def("landing_zone_sensor").job_name == "ingest"
