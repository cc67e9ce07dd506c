"""Analysts and the pipeline share the embedded warehouse: analysts read the published copy (ANALYTICS_PATH), which
no run holds, and a run never waits for them; the warehouse itself, when someone opens it anyway, fails the step
at once with a message saying who holds it, while a neighbour of the pipeline is waited for."""

import subprocess
import sys
import threading
import time

import dagster as dg
import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.defs.automation import landing_zone_sensor
from orchestration.defs.report import REPORT_KEY
from orchestration.run import run_pipeline

pytestmark = pytest.mark.slow

RETRY_EVENTS = {"STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_FAILURE"}


def _sensor_context(workspace, instance, cursor=None):
    resources = workspace.resources()
    return dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={"landing_zone": resources["landing_zone"], "warehouse": resources["warehouse"]},
    )


COPY = dg.AssetKey(["analytics", "published_copy"])


def _sensor_started_runs(workspace, defs, instance, cursors: dict) -> list[dg.ExecuteInProcessResult]:
    """What the daemon does on its ticks: the landing sensor's run (new files through dbt and the delivery, and the
    copy unless the last one is under ANALYTICS_PUBLISH_SECONDS old), then the automation sensor's next tick, which
    publishes the copy if that run did not (with the marketing report built from it), and then finds nothing left
    to do."""
    sensed = landing_zone_sensor(_sensor_context(workspace, instance, cursors.get("landing")))
    assert len(sensed.run_requests) == 1
    cursors["landing"] = sensed.cursor
    run = defs.resolve_job_def("ingest").execute_in_process(
        instance=instance, tags=sensed.run_requests[0].tags, raise_on_error=False
    )
    assert run.success, [e.message for e in run.all_events if e.event_type_value == "STEP_FAILURE"]
    built = {e.asset_key for e in run.get_asset_materialization_events()}
    assert dg.AssetKey(["reverse_etl", "tiktok_deliveries"]) in built
    runs = [run]
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursors.get("automation"))
    if COPY not in built:  # published a moment ago: the automation publishes what this run left
        requested = (tick.total_requested, tick.get_num_requested(COPY), tick.get_num_requested(REPORT_KEY))
        assert requested == (2, 1, 1), "the copy and the report built from it, nothing else"
        copy_run = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[COPY, REPORT_KEY], raise_on_error=False
        )
        assert {COPY, REPORT_KEY} <= {e.asset_key for e in copy_run.get_asset_materialization_events()}
        runs.append(copy_run)
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.total_requested == 0, "nothing left to do"
    cursors["automation"] = tick.cursor
    cursors["published_by_ingest"] = cursors.get("published_by_ingest", 0) + (COPY in built)
    return runs


def test_an_analyst_holding_the_published_copy_open_never_holds_up_a_sensor_started_run(workspace, tmp_path):
    defs = workspace.defs()
    analytics = workspace.root / "analytics.duckdb"
    cursors: dict = {}
    with dg.instance_for_test() as instance:
        workspace.add_world(visitors=60, seed=61)
        # the first build, as `make run` does it; the sensors take over from there
        assert run_pipeline(instance=instance, defs=defs, log_level="WARNING").success
        cursors["landing"] = landing_zone_sensor(_sensor_context(workspace, instance)).cursor
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert settled.total_requested == 0
        cursors["automation"] = settled.cursor
        assert oct(analytics.stat().st_mode & 0o777) == "0o600", "personal data: owner only"
        # a notebook's connection, left open for the rest of the test
        analyst = duckdb.connect(str(analytics), read_only=True)
        first_seen = analyst.execute("select count(*) from staging.stg_tracking__events").fetchall()[0][0]
        assert first_seen > 0
        for round_ in range(3):
            workspace.add_world(visitors=15, seed=62 + round_)
            for result in _sensor_started_runs(workspace, defs, instance, cursors):
                assert result.success
                waited = [e.event_type_value for e in result.all_events if e.event_type_value in RETRY_EVENTS]
                assert waited == [], f"round {round_}: a run waited or failed: {waited}"
            # the open connection still answers, from the copy it opened
            assert analyst.execute("select count(*) from staging.stg_tracking__events").fetchall()[0][0] == first_seen
        analyst.close()
        assert cursors["published_by_ingest"] == 0, "within a minute of the last copy: left to the automation"
        # later copies started from the one before: only what a run rebuilt was written again
        published = instance.get_latest_materialization_event(dg.AssetKey(["analytics", "published_copy"]))
        metadata = published.asset_materialization.metadata
        assert metadata["tables_appended"].value == 4, (
            "stg_tracking__events, stg_stripe__invoice_lines and the views over tracking's raw rows (identifies, "
            "tracks): new loads only"
        )
        assert metadata["tables_written"].value < metadata["tables"].value
        assert metadata["tables_patched"].value > 5, "the incremental models took only their changed keys' rows"
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        built = con.execute("select count(*) from staging.stg_tracking__events").fetchall()[0][0]
        purchases = con.execute("select count(*) from marts.attributed_purchases").fetchall()[0][0]
        ledger = con.execute("select count(*) from reverse_etl.tiktok_deliveries").fetchall()[0][0]
    with duckdb.connect(str(analytics), read_only=True) as again:
        assert again.execute("select count(*) from staging.stg_tracking__events").fetchall()[0][0] == built > first_seen
        assert again.execute("select count(*) from marts.attributed_purchases").fetchall()[0][0] == purchases
        assert again.execute("select count(*) from reverse_etl.tiktok_deliveries").fetchall()[0][0] == ledger
        columns = {r[0] for r in again.execute("describe reverse_etl.tiktok_deliveries").fetchall()}
        assert "payload" not in columns, "what was sent (hashed keys, IP, agent) stays in the warehouse"
        schemas = {
            r[0] for r in again.execute("select distinct table_schema from information_schema.tables").fetchall()
        }
        assert schemas == {"marts", "staging", "reverse_etl"}
        assert again.execute("select count(*) from staging.stg_tracking__pages").fetchall()[0][0] > 0
    assert [p.name for p in workspace.root.glob(".analytics.duckdb.*")] == [".analytics.duckdb.spare"], (
        "no copy left half-written; the one published before kept to be patched"
    )
    _assert_copy_equals_warehouse(workspace.warehouse, analytics)


def _assert_copy_equals_warehouse(warehouse, analytics):
    """Every relation of the copy holds what the warehouse holds (both ways), whatever was kept or appended."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute(f"attach '{analytics}' as copy (read_only)")
        relations = con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = 'copy'"
        ).fetchall()
        assert len(relations) > 20
        for schema, name in relations:
            columns = ", ".join(
                f'"{c[0]}"' for c in con.execute(f"select * from copy.{schema}.{name} limit 0").description
            )
            for a, b in ((f"copy.{schema}.{name}", f"{schema}.{name}"), (f"{schema}.{name}", f"copy.{schema}.{name}")):
                differ = con.execute(
                    f"select count(*) from (select {columns} from {a} except all select {columns} from {b})"
                )
                assert differ.fetchall()[0][0] == 0, f"{schema}.{name}: {a} has rows {b} has not"


def test_a_copy_patched_by_key_equals_the_warehouse_whatever_changed(tmp_path):
    """Changed rows, deleted and new keys, null keys, a key with two identical rows of which one goes: the copy
    takes only the rows of keys that changed and equals the warehouse afterwards, whether it starts from a byte
    copy of the published file or from the spare (the copy published before it), and a reader still holding the
    spare open keeps reading what it opened while the publication starts from a byte copy."""
    from orchestration.publish import publish

    warehouse, analytics = tmp_path / "wh.duckdb", tmp_path / "analytics.duckdb"

    def copied():
        with duckdb.connect(str(analytics), read_only=True) as copy:
            return sorted(copy.execute("from marts.t").fetchall(), key=str)

    def again(con):
        return publish(con, analytics, schemas=("marts",), changed={("marts", "t")}, keys={("marts", "t"): "k"})

    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema marts; create table marts.t (k integer, v varchar, n double)")
        con.execute("insert into marts.t values (1,'a',1), (2,'b',2), (null,'n',3), (3,'c',4), (3,'c',4), (5,'e',5)")
        publish(con, analytics, schemas=("marts",))
        first = copied()
        con.execute("update marts.t set v = 'A' where k = 1")
        con.execute("delete from marts.t where k = 2")
        con.execute("insert into marts.t values (4,'d',6), (null,'m',7)")
        con.execute("delete from marts.t where rowid = (select min(rowid) from marts.t where k = 3)")
        second = again(con)
        expected = sorted(
            [(1, "A", 1.0), (None, "n", 3.0), (3, "c", 4.0), (5, "e", 5.0), (4, "d", 6.0), (None, "m", 7.0)], key=str
        )
        assert (second.patched, second.written, second.from_spare) == (1, 0, False)
        assert copied() == expected
        con.execute("update marts.t set n = -1 where k is null")
        third = again(con)  # the first copy, two changes behind, patched
        assert (third.patched, third.from_spare) == (1, True)
        assert copied() == sorted([(k, v, -1.0 if k is None else n) for k, v, n in expected], key=str)
        # a notebook (another process) that will hold the spare open after the next publication
        code = (
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('select count(*) from marts.t').fetchall()[0][0], flush=True); sys.stdin.readline(); "
            "print(c.execute('select count(*) from marts.t').fetchall()[0][0], flush=True)"
        )
        reader = subprocess.Popen(
            [sys.executable, "-c", code, str(analytics)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        seen = reader.stdout.readline()
        con.execute("insert into marts.t values (6,'f',8)")
        fourth = again(con)
        assert (6, "f", 8.0) in copied() and len(copied()) == 7
        con.execute("insert into marts.t values (7,'g',9)")
        fifth = again(con)
        assert (fourth.from_spare, fifth.from_spare) == (True, False), "the spare is held by a reader"
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline() == seen == "6\n", "the reader's file is untouched"
        reader.wait(timeout=30)
        assert len(copied()) == 8 and first != copied()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert sorted(con.execute("from marts.t").fetchall(), key=str) == copied()


BUILD = st.lists(
    st.tuples(st.sampled_from(["rebuild", "post_hook_drops_a_row", "key_gone"]), st.sampled_from([None, 1, 2, 3, 4])),
    max_size=4,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(builds=st.lists(BUILD, min_size=1, max_size=4), data=st.data())
def test_a_copy_of_a_stamped_table_patched_by_key_equals_the_warehouse(tmp_path_factory, builds, data):
    """A table whose rows carry their build's stamp (built_at, as the keyed incremental models do): a build
    replaces some keys' rows under its stamp, a post-hook deletes one row of a key or all of them without a new
    stamp, and the stamps of later builds may be older (a clock set back). After each build the copy, patched from
    the stamps and the rows per key only, equals the warehouse, from a byte copy or from the spare."""
    from orchestration.publish import publish

    root = tmp_path_factory.mktemp("stamped")
    warehouse, analytics = root / "wh.duckdb", root / "analytics.duckdb"
    stamps = data.draw(st.permutations(range(len(builds))))
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema marts; create table marts.t (k integer, v varchar, built_at timestamp)")
        con.execute(
            "insert into marts.t values (1, 'a', '2026-01-01'), (2, 'b', '2026-01-01'), (2, 'b2', '2026-01-01'), "
            "(null, 'n', '2026-01-01'), (3, 'c', '2026-01-01')"
        )
        publish(con, analytics, schemas=("marts",))
        for n, build in enumerate(builds):
            stamp = f"2026-02-0{stamps[n] + 1}"
            for what, k in build:
                if what == "rebuild":  # delete+insert by key: the key's rows, all with this build's stamp
                    con.execute("delete from marts.t where k is not distinct from ?", [k])
                    con.execute("insert into marts.t values (?, ?, ?), (?, ?, ?)", [k, f"{n}", stamp, k, "x", stamp])
                elif what == "post_hook_drops_a_row":
                    first_row = "select min(rowid) from marts.t where k is not distinct from ?"
                    con.execute(f"delete from marts.t where rowid = ({first_row})", [k])
                else:
                    con.execute("delete from marts.t where k is not distinct from ?", [k])
            result = publish(con, analytics, schemas=("marts",), changed={("marts", "t")}, keys={("marts", "t"): "k"})
            assert (result.patched, result.written) == (1, 0)
            in_warehouse = sorted(con.execute("from marts.t").fetchall(), key=str)
            with duckdb.connect(str(analytics), read_only=True) as copy:
                assert sorted(copy.execute("from marts.t").fetchall(), key=str) == in_warehouse


def test_a_table_that_became_a_view_is_a_view_in_the_copy_and_one_that_cannot_be_stays_a_table(tmp_path):
    """A model whose materialization changed from table to view (a report made a view) is published as a view over
    the copied tables, not written again as a table at every publication; a view over something the copy does not
    hold is still copied as a table, and kept while it does not change."""
    from orchestration.publish import publish

    warehouse, analytics = tmp_path / "wh.duckdb", tmp_path / "analytics.duckdb"

    def kinds():
        with duckdb.connect(str(analytics), read_only=True) as copy:
            return dict(copy.execute("select table_name, table_type from information_schema.tables").fetchall())

    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema marts; create schema intermediate")
        con.execute("create table marts.t as select range as k from range(5)")
        con.execute("create table marts.report as select count(*) as n from marts.t")
        con.execute("create table intermediate.hidden as select 1 as x")
        con.execute("create view marts.over_hidden as select * from intermediate.hidden")
        publish(con, analytics, schemas=("marts",))
        assert kinds() == {"t": "BASE TABLE", "report": "BASE TABLE", "over_hidden": "BASE TABLE"}
        con.execute("drop table marts.report")
        con.execute("create view marts.report as select count(*) as n from marts.t")
        for _ in range(2):
            con.execute("insert into marts.t values (99)")
            result = publish(con, analytics, schemas=("marts",), changed={("marts", "t"), ("marts", "report")})
            assert kinds() == {"t": "BASE TABLE", "report": "VIEW", "over_hidden": "BASE TABLE"}
            # t, and (from the spare, two publications behind, where nothing is kept) the view over the hidden table
            assert result.written == (2 if result.from_spare else 1), result
        with duckdb.connect(str(analytics), read_only=True) as copy:
            assert copy.execute("from marts.report").fetchall() == [(7,)]


def _hold_open(path):
    """Another process holding the warehouse open, as a notebook would."""
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    return holder


def test_a_load_fails_at_once_naming_who_holds_the_warehouse_when_it_is_not_the_pipeline(workspace, tmp_path):
    workspace.add_world(visitors=20, seed=71)
    duckdb.connect(str(workspace.warehouse)).close()
    holder = _hold_open(workspace.warehouse)
    try:
        with dg.instance_for_test() as instance:
            result = (
                workspace.defs().resolve_job_def("ingest").execute_in_process(instance=instance, raise_on_error=False)
            )
        assert not result.success
        events = [e.event_type_value for e in result.all_events]
        assert "STEP_UP_FOR_RETRY" not in events, "nothing says when an analyst lets go: no waiting"
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.step_failure_data.user_failure_data.description
        assert f"(PID {holder.pid})" in message and "not the pipeline" in message and "ANALYTICS_PATH" in message
    finally:
        holder.kill()
        holder.wait()


def test_a_step_waits_for_the_pipeline_s_own_holder_and_says_which(workspace, tmp_path):
    """A process recorded as the pipeline's (here: as the landing sensor records itself) is a neighbour: the step
    asks Dagster to try again, naming it, and succeeds once it lets go."""
    from orchestration.warehouse_lock import users_dir

    workspace.add_world(visitors=20, seed=72)
    duckdb.connect(str(workspace.warehouse)).close()
    holder = _hold_open(workspace.warehouse)
    users_dir(workspace.warehouse).mkdir(mode=0o700, exist_ok=True)
    (users_dir(workspace.warehouse) / str(holder.pid)).write_text('{"what": "landing sensor"}')
    try:
        with dg.instance_for_test() as instance:

            def release_once_waited_for() -> None:
                # let go once a step has said it waits (a fixed delay raced the run's start on a loaded machine)
                deadline = time.time() + 120
                while time.time() < deadline:
                    runs = instance.get_runs()
                    if runs and any("held by" in e.user_message for e in instance.all_logs(runs[0].run_id)):
                        break
                    time.sleep(0.2)
                holder.kill()

            threading.Thread(target=release_once_waited_for, daemon=True).start()
            result = (
                workspace.defs().resolve_job_def("ingest").execute_in_process(instance=instance, raise_on_error=False)
            )
            messages = [e.user_message for e in instance.all_logs(result.run_id) if "held by" in e.user_message]
        assert result.success
        assert any("STEP_UP_FOR_RETRY" == e.event_type_value for e in result.all_events)
        assert any("the pipeline's landing sensor" in m and f"(PID {holder.pid})" in m for m in messages), messages
    finally:
        holder.kill()
        holder.wait()
        (users_dir(workspace.warehouse) / str(holder.pid)).unlink(missing_ok=True)


def test_a_change_to_the_dbt_project_reaches_every_row_of_the_copy(workspace):
    """The operator changes a setting the models read (the default phone region: national numbers are read anew),
    dbt rebuilds everything in full, and the copy published next holds the new values of old rows too, not only of
    new loads."""
    from orchestration.definitions import build_defs
    from orchestration.resources import TikTokResource

    workspace.add_world(visitors=80, seed=81)
    national = (
        "select count(*) from staging.stg_tracking__events where trait_phone is not null and trait_phone not like '+%'"
    )
    with dg.instance_for_test() as instance:
        assert run_pipeline(instance=instance, defs=workspace.defs(), log_level="WARNING").success
        workspace.add_world(visitors=10, seed=82)
        assert run_pipeline(instance=instance, defs=workspace.defs(), log_level="WARNING").success
        assert workspace.scalar(national) > 0, "the world has national numbers, which the region decides"
        before = workspace.scalar("select list(phone_normalised order by message_id) from staging.stg_tracking__events")
        resources = {**workspace.resources(), "tiktok": TikTokResource(default_phone_region="GB")}
        assert run_pipeline(instance=instance, defs=build_defs(resources), log_level="WARNING").success
    after = workspace.scalar("select list(phone_normalised order by message_id) from staging.stg_tracking__events")
    assert after != before, "the warehouse was rebuilt with the new region"
    _assert_copy_equals_warehouse(workspace.warehouse, workspace.root / "analytics.duckdb")


def test_a_dbt_build_that_found_the_warehouse_locked_by_a_brief_read_is_tried_again(tmp_path):
    """dbt opens the file itself: when a neighbour's read (the landing sensor's, which records itself only while it
    reads) held it at that moment, the build asks Dagster to try again rather than failing the run, after which
    nothing would rebuild until new data came; an error that is no lock conflict is left as it is."""
    from orchestration.resources import busy_build

    warehouse = tmp_path / "warehouse.duckdb"
    dbt_error = RuntimeError(
        "The dbt CLI process failed with exit code `2`. IO Error: Could not set lock on file "
        f'"{warehouse}": Conflicting lock is held in /usr/bin/python3.11 (PID 999999999). However, you would be able '
        "to open this database in read-only mode"
    )
    retry = busy_build(dbt_error, warehouse)
    assert isinstance(retry, dg.RetryRequested)
    assert busy_build(RuntimeError("Compilation Error in model x"), warehouse) is None
