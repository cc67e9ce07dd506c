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
