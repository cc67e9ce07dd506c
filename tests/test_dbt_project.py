"""The dbt project on its own: `dbt build` (models and their data tests) against a DuckDB file."""

import json
import os
import subprocess
from datetime import datetime, timedelta

import pytest

from tests.conftest import DBT, DBT_PROJECT

pytestmark = pytest.mark.slow


def test_dbt_build_passes_all_its_tests_on_a_simulated_world(workspace):
    workspace.add_world(visitors=300, seed=31)
    out = workspace.dbt("build")
    assert "ERROR=0" in out and "PASS=" in out
    tests = int(out.split("data tests")[0].rsplit(",", 1)[-1].strip().split()[0])
    assert tests >= 30
    # every column of every staging model an analyst can query is documented (doc blocks in _*__docs.md)
    manifest = json.loads((workspace.root / "dbt_target" / "manifest.json").read_text())
    undocumented, checked = [], 0
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node["schema"] != "staging":
            continue
        documented = {name for name, column in node["columns"].items() if column["description"].strip()}
        built = {r[0] for r in workspace.query(f"describe staging.{node['name']}")}
        checked += len(built)
        undocumented += [f"{node['name']}.{c}" for c in sorted(built - documented)]
    assert checked > 200 and not undocumented, (checked, undocumented)
    # every SQL model the product's Python reads has an enforced contract: a renamed or retyped column fails the
    # dbt build, not the delivery or a check at run time (Python models cannot have contracts in dbt 1.11)
    read_by_python = _models_named_in(["ingestion", "reverse_etl", "orchestration"], manifest)
    assert {"tiktok_conversions", "attributed_purchases", "stg_tracking__events"} <= set(read_by_python)
    without = [
        m for m, node in read_by_python.items() if node["language"] == "sql" and not node["contract"]["enforced"]
    ]
    assert not without, f"give these models `contract: {{enforced: true}}`: {without}"


def _models_named_in(packages: list[str], manifest: dict) -> dict[str, dict]:
    import re
    from pathlib import Path

    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    root = Path(DBT_PROJECT).parent
    source = "\n".join(p.read_text() for package in packages for p in (root / package).rglob("*.py"))
    named = set(re.findall(r"\b(?:staging|intermediate|marts)\.([a-z_0-9]+)", source))
    return {name: models[name] for name in named if name in models}


def test_staging_is_incremental_and_rebuilt_in_full_when_the_project_changes(workspace):
    """New raw events are appended to stg_tracking__events (the rows already staged are left alone); Stripe object
    states and the staging models of one row per object take only the objects with new events; every incremental
    model equals a full rebuild; and a changed dbt project makes the next run rebuild everything."""
    import shutil

    import duckdb

    workspace.add_world(visitors=200, seed=41)
    assert workspace.run().success
    staged = workspace.scalar("select count(*) from staging.stg_tracking__events")
    assert staged == workspace.scalar("select count(*) from raw.tracking_events")
    # a mark that only a rebuild would wash out
    marked = workspace.scalar("select min(message_id) from staging.stg_tracking__events")
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("update staging.stg_tracking__events set page_title = 'marked' where message_id = ?", [marked])
        # a load that committed late, stamped an hour before the newest staged one (another loader's clock)
        con.execute(
            "insert into raw.tracking_events select * replace ('late-' || message_id as message_id, "
            "_loaded_at - interval '1 hour' as _loaded_at) from raw.tracking_events "
            "where _loaded_at = (select max(_loaded_at) from raw.tracking_events) limit 3"
        )
        # a page that arrives late for a browser already staged, ten minutes before its second visit started: a
        # plain page on the site, so that visit now continues the late page's visit (the touches change)
        second_visit = con.execute("""
            select touch_id from (select touch_id, row_number() over (partition by anonymous_id order by touched_at)
                                  as n from intermediate.int_touches) where n = 2 order by touch_id limit 1
        """).fetchall()[0][0]
        con.execute(
            """
            insert into raw.tracking_events
            select * replace ('backdated-' || message_id as message_id,
                              event_timestamp - interval '10 minutes' as event_timestamp,
                              cast(json_merge_patch(payload, '{"context": {"campaign": null, "page": {
                                  "url": "https://shop.example/late", "path": "/late", "search": null,
                                  "referrer": "https://shop.example/"}}, "properties": null}') as varchar) as payload,
                              now() at time zone 'UTC' as _loaded_at)
            from raw.tracking_events where message_id = ?
        """,
            [second_visit],
        )
        # identity changes for customers who bought: (1) a phone nobody had seen (a new browser) clicks an ad a day
        # before a buyer's first purchase and signs up with the buyer's email: merged into the buyer, whose first
        # touch moves; (2) a browser of another buyer reveals a second email: a shared device, its edges are
        # dropped and it leaves the buyer (a split); (3) a third buyer later withdraws advertising consent: none of
        # their purchases may be sent, though the purchases themselves did not change
        merged, split, withdrawn = con.execute("""
            with buyers as (
                select p.customer_id, min(p.purchased_at) as first_purchase,
                       min(e.node_value) filter (where e.node_type = 'email') as email,
                       min(e.node_value) filter (where e.node_type = 'browser') as browser
                from marts.attributed_purchases p join intermediate.int_identity_components e using (customer_id)
                group by p.customer_id having email is not null and browser is not null
                order by p.customer_id
            )
            select (select struct_pack(email := email, first_purchase := first_purchase) from buyers limit 1),
                   (select browser from buyers limit 1 offset 1),
                   (select struct_pack(customer_id := customer_id, browser := browser) from buyers limit 1 offset 2)
        """).fetchall()[0]
        for message_id, event_type, browser, at, patch in (
            (
                "merge-page",
                "page",
                "b-new-phone",
                merged["first_purchase"] - timedelta(days=1),
                '{"context": {"page": {"url": "https://shop.example/?ttclid=E.C.P.merge"}}}',
            ),
            (
                "merge-identify",
                "identify",
                "b-new-phone",
                merged["first_purchase"] - timedelta(days=1),
                json.dumps({"traits": {"email": merged["email"]}}),
            ),
            (
                "split-identify",
                "identify",
                split,
                merged["first_purchase"],
                '{"traits": {"email": "a-second-person@example.org"}}',
            ),
            (
                "consent-withdrawn",
                "page",
                withdrawn["browser"],
                datetime(2030, 1, 1),
                '{"context": {"consent": {"categoryPreferences": {"advertising": false}}}}',
            ),
        ):
            con.execute(
                """
                insert into raw.tracking_events
                select * replace (? as message_id, ? as anonymous_id, ? as event_timestamp,
                                  cast(json_merge_patch(payload, ?) as varchar) as payload,
                                  now() at time zone 'UTC' as _loaded_at)
                from raw.tracking_events where type = ? order by message_id limit 1
            """,
                [message_id, browser, at, patch, event_type],
            )
        # Stripe events for objects already staged: a newer state of an invoice (voided, its lines gone), and a
        # stale event of a charge (failed, but a day older than its current state, so it must change nothing)
        invoice, charge = con.execute("""
            select (select min(object_id) from staging.stg_stripe__object_states where object_type = 'invoice'),
                   (select min(object_id) from staging.stg_stripe__object_states where object_type = 'charge')
        """).fetchall()[0]
        assert (
            con.execute(
                "select count(*) from staging.stg_stripe__invoice_lines where invoice_id = ?", [invoice]
            ).fetchall()[0][0]
            > 0
        )
        for object_id, shift, patch in (
            (invoice, "+ interval '1 day'", {"status": "void", "lines": {"data": []}}),
            (charge, "- interval '1 day'", {"status": "failed"}),
        ):
            con.execute(
                f"""
                insert into raw.stripe_events
                select * replace ('evt_later_' || event_id as event_id, created_at {shift} as created_at,
                                  cast(json_merge_patch(payload, ?) as varchar) as payload,
                                  now() at time zone 'UTC' as _loaded_at)
                from raw.stripe_events where event_id = (
                    select event_id from staging.stg_stripe__object_states where object_id = ?)
            """,
                [json.dumps({"data": {"object": patch}}), object_id],
            )

    workspace.add_world(visitors=60, seed=42)
    assert workspace.run().success
    raw = workspace.scalar("select count(*) from raw.tracking_events")
    assert workspace.scalar("select count(*) from staging.stg_tracking__events") == raw > staged
    assert workspace.scalar("select count(*) from staging.stg_tracking__events where message_id like 'late-%'") == 3
    assert (
        workspace.scalar(
            "select count(distinct customer_id) from intermediate.int_identity_components "
            "where node_value in ('b-new-phone', ?)",
            [merged["email"]],
        )
        == 1
    )
    assert workspace.scalar("select count(*) from marts.customer_journeys where anonymous_id = 'b-new-phone'") == 1
    assert workspace.query(
        "select distinct advertising_consent from marts.tiktok_conversions where customer_id = ?",
        [withdrawn["customer_id"]],
    ) == [(False,)]
    assert workspace.scalar("select status from staging.stg_stripe__invoices where invoice_id = ?", [invoice]) == "void"
    assert (
        workspace.scalar("select count(*) from staging.stg_stripe__invoice_lines where invoice_id = ?", [invoice]) == 0
    )
    assert workspace.scalar("select status from staging.stg_stripe__charges where charge_id = ?", [charge]) != "failed"
    assert (
        workspace.scalar("select page_title from staging.stg_tracking__events where message_id = ?", [marked])
        == "marked"
    ), "an incremental run leaves staged rows alone"
    # no table of an incremental build's new rows is left behind (dbt-duckdb's for a Python model holds identifiers)
    assert (
        workspace.query(
            "select table_schema, table_name from information_schema.tables where table_name like '%__dbt_tmp%'"
        )
        == []
    )
    # appending gave what a rebuild gives
    copy = workspace.root / "rebuilt.duckdb"
    shutil.copy(workspace.warehouse, copy)
    out = subprocess.run(
        [
            str(DBT),
            "run",
            "--full-refresh",
            "-s",
            "config.materialized:incremental",
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(workspace.root / "dbt_target_copy"),
            "--log-path",
            str(workspace.root / "dbt_logs"),
        ],
        env={**os.environ, "WAREHOUSE_PATH": str(copy)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    results = json.loads((workspace.root / "dbt_target_copy" / "run_results.json").read_text())["results"]
    incremental_models = sorted(
        ".".join(r["relation_name"].replace('"', "").split(".")[1:]) for r in results if r["relation_name"]
    )  # (the on-run-start hook has none)
    assert {
        "staging.stg_tracking__events",
        "staging.stg_stripe__object_states",
        "staging.stg_stripe__invoices",
        "staging.stg_stripe__invoice_lines",
        "intermediate.int_touches",
        "intermediate.int_identity_components",
        "marts.customer_journeys",
        "marts.attributed_purchases",
        "marts.attribution_credits",
        "marts.tiktok_conversions",
    } <= set(incremental_models)
    with duckdb.connect(str(copy)) as con:
        con.execute(f"attach '{workspace.warehouse}' as incremental (read_only)")
        for model in incremental_models:
            rows = con.execute(f"select count(*) from {model}").fetchall()[0][0]
            assert rows > 0, model
            unmarked = f"where message_id <> '{marked}'" if model == "staging.stg_tracking__events" else ""
            # (built_at is when a row was built: the rows an incremental build left alone keep an older one)
            names = [c[0] for c in con.execute(f"select * from {model} limit 0").description]
            listed = "* exclude (built_at)" if "built_at" in names else "*"
            for a, b in ((model, f"incremental.{model}"), (f"incremental.{model}", model)):
                extra = con.execute(f"""
                    select count(*) from (
                        select {listed} from {a} {unmarked}
                        except all
                        select {listed} from {b} {unmarked})
                """).fetchall()[0][0]
                assert extra == 0, (
                    f"{model}: {extra} of {rows} rows differ between the incremental and the rebuilt table"
                )

    # a buyer withdraws advertising consent in a track event, the only new data: no page, no identity, only the
    # tracking of one of their browsers changed. None of their purchases may be sent any more.
    buyer, browser = workspace.query("""
        select c.customer_id, min(i.node_value) from marts.tiktok_conversions c
        join intermediate.int_identity_components i on i.customer_id = c.customer_id and i.node_type = 'browser'
        where c.purchase_id is not null and c.advertising_consent
        group by c.customer_id order by c.customer_id limit 1
    """)[0]
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute(
            """
            insert into raw.tracking_events
            select * replace ('consent-withdrawn-in-a-track' as message_id, ? as anonymous_id,
                              'Product Viewed' as event_name, null as user_id,
                              timestamp '2030-01-01' as event_timestamp,
                              cast(json_merge_patch(payload, '{"event": "Product Viewed", "userId": null,
                                  "traits": null,
                                  "context": {"consent": {"categoryPreferences": {"advertising": false}}}}')
                                  as varchar) as payload,
                              now() at time zone 'UTC' as _loaded_at)
            from raw.tracking_events where type = 'track' order by message_id limit 1
        """,
            [browser],
        )
    assert workspace.run().success
    assert workspace.query(
        "select distinct advertising_consent, eligible from marts.tiktok_conversions where customer_id = ?", [buyer]
    ) == [(False, False)]

    # the project the models were built from changed (here: the record of it): everything is rebuilt
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("update monitoring.dbt_build_state set project = 'an older project'")
    workspace.add_world(visitors=20, seed=43)
    assert workspace.run().success
    assert (
        workspace.scalar("select page_title from staging.stg_tracking__events where message_id = ?", [marked])
        != "marked"
    )
    assert workspace.scalar("select count(*) from staging.stg_tracking__events") == workspace.scalar(
        "select count(*) from raw.tracking_events"
    )
