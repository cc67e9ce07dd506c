"""Tests over loaded rows check, in the pipeline's incremental builds, the loads since the last build (the earlier
ones were checked then), so their cost follows the new data, not the history; a full refresh, `make test` and dbt
by hand check every row."""

import json

import dagster as dg
import duckdb
import pytest

from orchestration.defs.dbt import DBT_PROJECT_DIR, build_target_path

pytestmark = pytest.mark.slow

BOGUS = """
    insert into staging.stg_tracking__events
    select * replace (
        '{message_id}' as message_id, 'bogus' as event_type, cast('{loaded_at}' as timestamp) as loaded_at
    )
    from staging.stg_tracking__events limit 1
"""


def test_checks_on_loads_scan_new_loads_in_pipeline_builds_and_everything_by_hand(workspace):
    workspace.add_world(visitors=60, seed=81)
    assert workspace.run().success  # the first build checks every row
    # a row of an old load that breaks a check: an incremental build does not read it again
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute(BOGUS.format(message_id="m-old-bogus", loaded_at="2000-01-01"))
    workspace.add_world(visitors=20, seed=82)
    assert workspace.run().success, "the old load's row was checked when it was loaded, not now"

    # a row that came with the newest loads is checked: the build fails on it, blocking what follows
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute(BOGUS.format(message_id="m-new-bogus", loaded_at="2999-01-01"))
    workspace.add_world(visitors=20, seed=83)
    failed = workspace.run()
    assert not failed.success
    assert dg.AssetKey(["reverse_etl", "tiktok_deliveries"]) not in {
        e.asset_key for e in failed.get_asset_materialization_events()
    }, "nothing is sent from a build whose checks failed"
    results = json.loads((DBT_PROJECT_DIR / build_target_path(workspace.warehouse) / "run_results.json").read_text())
    assert [r["unique_id"].split(".")[2] for r in results["results"] if r["status"] == "fail"] == [
        "accepted_values_stg_tracking__events_event_type__page__identify__track"
    ]
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        scope = con.execute(
            "select count(*) from information_schema.tables where table_name = 'dbt_tests_scope'"
        ).fetchall()
    assert scope == [(0,)], "the scope exists only while a pipeline build runs"

    # dbt by hand checks every row, the old one too
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("delete from staging.stg_tracking__events where message_id = 'm-new-bogus'")
    with pytest.raises(AssertionError, match="accepted_values_stg_tracking__events_event_type"):
        workspace.dbt("test", "--select", "stg_tracking__events")


# half a credit more for an existing purchase: credits_sum_to_one fails on it (alone or with the purchase's other
# rows), and nothing else does
BOGUS_CREDIT = """
    insert into marts.attribution_credits
    select * replace ('bogus-' || credit_id as credit_id, credit / 2 as credit,
                      cast('{built_at}' as timestamp) as built_at)
    from marts.attribution_credits where purchase_id = '{purchase_id}' and attribution_model = 'first_touch'
"""


def test_checks_on_built_rows_scan_the_rows_built_since_the_last_success_and_everything_by_hand(workspace):
    workspace.add_world(visitors=60, seed=84)
    assert workspace.run().success
    purchase = workspace.scalar("select min(purchase_id) from marts.attribution_credits")
    # a row stamped before the last successful build breaks a check: an incremental build does not read it again
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute(BOGUS_CREDIT.format(built_at="2000-01-01", purchase_id=purchase))
    workspace.add_world(visitors=20, seed=85)
    assert workspace.run().success, "the old row was checked when it was built, not now"
    assert workspace.scalar("select count(*) from marts.attribution_credits where credit_id like 'bogus-%'") == 1

    # a row stamped after it is checked: the build fails, and so does the next one, whose models rebuild nothing of
    # it (the failed build's rows stay in scope until a build succeeds)
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("delete from marts.attribution_credits where credit_id like 'bogus-%'")
        con.execute(BOGUS_CREDIT.format(built_at="2999-01-01", purchase_id=purchase))
    for seed in (86, 87):
        workspace.add_world(visitors=20, seed=seed)
        assert not workspace.run().success
        results = json.loads(
            (DBT_PROJECT_DIR / build_target_path(workspace.warehouse) / "run_results.json").read_text()
        )
        assert [r["unique_id"].split(".")[2] for r in results["results"] if r["status"] == "fail"] == [
            "credits_sum_to_one_attribution_credits_"
        ]

    # dbt by hand checks every row, the old one too
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("update marts.attribution_credits set built_at = '2000-01-01' where credit_id like 'bogus-%'")
    with pytest.raises(AssertionError, match="credits_sum_to_one_attribution_credits"):
        workspace.dbt("test", "--select", "attribution_credits")
