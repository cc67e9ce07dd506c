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
