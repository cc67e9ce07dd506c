import dagster as dg
import duckdb

from ingestion.landing import write_jsonl_atomic
from ingestion.loader import load_all
from orchestration.defs.automation import landing_zone_sensor


def _evaluate(workspace, cursor=None):
    resources = workspace.resources()
    with dg.build_sensor_context(
        cursor=cursor, resources={"landing_zone": resources["landing_zone"], "warehouse": resources["warehouse"]}
    ) as ctx:
        return landing_zone_sensor(ctx)


def _page(i):
    return {"messageId": f"m{i}", "type": "page", "timestamp": "2026-06-01T00:00:00Z", "anonymousId": "b"}


def test_no_landing_files_means_no_run(workspace):
    result = _evaluate(workspace)
    assert not result.run_requests and "no new landing files" in result.skip_reason.skip_message


def test_new_files_start_one_run_and_are_not_requested_twice(workspace):
    write_jsonl_atomic(workspace.landing / "tracking" / "a.jsonl", [_page(1)])
    first = _evaluate(workspace)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["landing/new_files"] == "1"
    again = _evaluate(workspace, cursor=first.cursor)
    assert not again.run_requests
    write_jsonl_atomic(
        workspace.landing / "stripe_events" / "b.jsonl",
        [{"id": "evt_1", "type": "x", "created": 1, "data": {"object": {}}}],
    )
    third = _evaluate(workspace, cursor=first.cursor)
    assert len(third.run_requests) == 1 and third.run_requests[0].run_key != first.run_requests[0].run_key


def test_files_already_loaded_do_not_start_a_run_even_without_a_cursor(workspace):
    write_jsonl_atomic(workspace.landing / "tracking" / "a.jsonl", [_page(1)])
    with duckdb.connect(str(workspace.warehouse)) as con:
        load_all(con, workspace.landing)
    assert not _evaluate(workspace).run_requests


def test_a_segment_left_by_a_killed_collector_is_published_and_starts_a_run(workspace):
    """An orphaned segment (its process gone, its lock released) holds acknowledged events; a live one does not
    count until its owner publishes it."""
    from ingestion.durable import Segment

    live = Segment(workspace.landing / "tracking" / "collector")
    live.append(b'{"messageId":"m-live","type":"page","timestamp":"2026-06-01T00:00:00Z","anonymousId":"b"}\n', 1)
    assert not _evaluate(workspace).run_requests, "a live segment is not a landing file yet"
    orphan = workspace.landing / "tracking" / "collector" / ".open-deadhost-1-abc.jsonl"
    orphan.write_text(
        '{"messageId":"m-orphan","type":"page","timestamp":"2026-06-01T00:00:00Z","anonymousId":"b"}\n'
        '{"messageId":"m-torn","type":"pa'
    )
    result = _evaluate(workspace)
    assert len(result.run_requests) == 1
    (published,) = [p for p in (workspace.landing / "tracking").rglob("*-recovered.jsonl")]
    assert published.read_text().count("\n") == 1 and "m-torn" not in published.read_text()
    live.close()


def test_the_cursor_stays_bounded_and_a_busy_warehouse_does_not_bring_back_loaded_files(workspace, monkeypatch):
    """Thousands of files a day: the cursor remembers only files after its watermark (not every file ever seen),
    and while a run holds the warehouse, files already loaded are not asked for again."""
    import json
    import subprocess
    import sys

    from orchestration.defs import automation

    monkeypatch.setattr(automation, "CURSOR_SLACK_SECONDS", 0.0)
    for i in range(300):
        write_jsonl_atomic(workspace.landing / "tracking" / f"f{i:04d}.jsonl", [_page(i)])
    first = _evaluate(workspace)
    assert first.run_requests[0].tags["landing/new_files"] == "300"
    assert len(json.loads(first.cursor)["seen"]) == 300, "requested, not loaded yet: remembered"
    with duckdb.connect(str(workspace.warehouse)) as con:
        load_all(con, workspace.landing)
    settled = _evaluate(workspace, cursor=first.cursor)
    assert not settled.run_requests
    assert json.loads(settled.cursor)["seen"] == [], "all loaded: the watermark took them"

    write_jsonl_atomic(workspace.landing / "tracking" / "late.jsonl", [_page(999)])
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(30)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(workspace.warehouse)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        busy = _evaluate(workspace, cursor=settled.cursor)
    finally:
        holder.kill()
        holder.wait()
    assert [r.tags["landing/new_files"] for r in busy.run_requests] == ["1"], "only the new file, while busy"


def test_a_day_of_small_files_is_not_read_again_but_a_file_published_into_it_later_is_loaded(workspace, monkeypatch):
    """The services publish a file every few seconds. Once loaded, a day folder that nothing was added to is not
    read again by the loader or the sensor; a file that lands in it later (an orphan recovered after a crash) is
    still found by both, and nothing is loaded twice."""
    import json
    import os
    import time

    from ingestion import landing

    day = workspace.landing / "tracking" / "collector" / "2026-12-01"
    for i in range(2000):
        write_jsonl_atomic(day / f"seg-{i:05d}.jsonl", [_page(i)])
    with duckdb.connect(str(workspace.warehouse)) as con:
        assert load_all(con, workspace.landing)["tracking"].loaded_rows == 2000
    settled = _evaluate(workspace, cursor=_evaluate(workspace).cursor)
    an_hour_ago = time.time() - 3600
    two_hours_ago = an_hour_ago - 3600  # before the listing's slack, too
    os.utime(day, (two_hours_ago, two_hours_ago))
    with duckdb.connect(str(workspace.warehouse)) as con:  # the last listing was an hour ago too
        con.execute("update raw.landing_listings set listed_at = listed_at - 3600")
    cursor = json.loads(settled.cursor)
    settled_cursor = json.dumps({**cursor, "after": an_hour_ago + 1})

    read: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(landing.os, "scandir", lambda p: read.append(str(p)) or scandir(p))
    write_jsonl_atomic(day.parent / "2026-12-02" / "seg-new.jsonl", [_page(5000)])
    request = _evaluate(workspace, cursor=settled_cursor)
    assert request.run_requests[0].tags["landing/new_files"] == "1"
    with duckdb.connect(str(workspace.warehouse)) as con:
        assert load_all(con, workspace.landing)["tracking"].loaded_rows == 1
    assert str(day) not in read, "the loaded day folder was not read again"

    write_jsonl_atomic(day / "seg-recovered.jsonl", [_page(6000)])
    read.clear()
    late = _evaluate(workspace, cursor=request.cursor)
    assert late.run_requests[0].tags["landing/new_files"] == "1"
    with duckdb.connect(str(workspace.warehouse)) as con:
        assert load_all(con, workspace.landing)["tracking"].loaded_rows == 1
        assert con.execute("select count(*), count(distinct message_id) from raw.tracking_events").fetchall() == [
            (2002, 2002)
        ]
    assert str(day) in read


def test_files_that_land_while_a_run_waits_to_start_do_not_queue_a_second_run(workspace):
    """A purchase every few seconds: each new file must not queue its own run behind one that has not started yet
    (runs then queue faster than they finish); that run loads them when it starts. Once it has started, files it
    may have missed start the next run."""
    import uuid

    resources = workspace.resources()

    def evaluate(instance, cursor):
        with dg.build_sensor_context(
            cursor=cursor,
            instance=instance,
            resources={"landing_zone": resources["landing_zone"], "warehouse": resources["warehouse"]},
        ) as ctx:
            return landing_zone_sensor(ctx)

    with dg.instance_for_test() as instance:
        write_jsonl_atomic(workspace.landing / "tracking" / "a.jsonl", [_page(1)])
        first = evaluate(instance, None)
        assert len(first.run_requests) == 1
        queued = dg.DagsterRun(job_name="ingest", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.NOT_STARTED)
        instance.add_run(queued)
        write_jsonl_atomic(workspace.landing / "tracking" / "b.jsonl", [_page(2)])
        behind = evaluate(instance, first.cursor)
        assert not behind.run_requests
        assert "has not started yet" in behind.skip_reason.skip_message
        instance.delete_run(queued.run_id)  # it ran, but its load began before b.jsonl appeared
        after = evaluate(instance, behind.cursor)
        assert [r.tags["landing/new_files"] for r in after.run_requests] == ["1"]
