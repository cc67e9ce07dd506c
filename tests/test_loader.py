import gzip
import json
import shutil

import duckdb
import pytest

from ingestion.landing import write_jsonl_atomic
from ingestion.loader import load_all, load_source


def stripe_event(i: int, **extra) -> dict:
    return {
        "id": f"evt_{i:04d}",
        "object": "event",
        "type": "invoice.paid",
        "created": 1780000000 + i,
        "api_version": "2025-09-30.clover",
        "data": {"object": {"id": f"in_{i}", "object": "invoice"}},
        **extra,
    }


def page(i: int, **extra) -> dict:
    return {
        "messageId": f"m-{i}",
        "type": "page",
        "timestamp": "2026-06-01T10:00:00.000Z",
        "anonymousId": "b-1",
        "context": {"page": {"url": "https://shop.example/"}},
        **extra,
    }


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "wh.duckdb"))
    yield c
    c.close()


def count(con, table):
    return con.execute(f"select count(*) from raw.{table}").fetchall()[0][0]


def test_each_event_loads_once_across_duplicate_deliveries_and_copied_files(tmp_path, con):
    landing = tmp_path / "landing"
    events = [stripe_event(i) for i in range(5)]
    write_jsonl_atomic(landing / "stripe_events" / "a.jsonl", events + [events[0]])  # re-delivered in the file
    write_jsonl_atomic(landing / "stripe_events" / "b.jsonl", events[3:] + [stripe_event(9)])
    shutil.copy(landing / "stripe_events" / "a.jsonl", landing / "stripe_events" / "a-copy.jsonl")
    result = load_source(con, landing, "stripe_events")
    assert count(con, "stripe_events") == 6
    assert result.loaded_rows == 6 and result.files == 3
    assert result.duplicate_rows == 6 + 3 + 6 - 6
    first = con.execute("select _file, _line from raw.stripe_events where event_id = 'evt_0000'").fetchall()[0]
    assert first == ("stripe_events/a-copy.jsonl", 1)  # the first by file name, then line
    per_file = con.execute(
        "select file, lines, loaded_rows, duplicate_rows, quarantined_rows from raw.loaded_files order by file"
    ).fetchall()
    assert per_file == [
        ("stripe_events/a-copy.jsonl", 6, 5, 1, 0),
        ("stripe_events/a.jsonl", 6, 0, 6, 0),
        ("stripe_events/b.jsonl", 3, 1, 2, 0),
    ]
    # the loader writes raw text uncompressed, in any order, and gives the connection its settings back
    settings = (
        "select value from duckdb_settings() where name in ('disabled_compression_methods', "
        "'preserve_insertion_order') order by name"
    )
    assert con.execute(settings).fetchall() == [("",), ("true",)]


def test_rerun_loads_nothing_and_new_files_add_exactly_their_rows(tmp_path, con):
    landing = tmp_path / "landing"
    write_jsonl_atomic(landing / "tracking" / "d1.jsonl", [page(i) for i in range(10)])
    load_all(con, landing)
    again = load_all(con, landing)
    assert again["tracking"].files == 0 and count(con, "tracking_events") == 10
    write_jsonl_atomic(landing / "tracking" / "d2.jsonl", [page(i) for i in range(8, 13)])
    added = load_all(con, landing)["tracking"]
    assert (added.files, added.loaded_rows, added.duplicate_rows) == (1, 3, 2)
    assert count(con, "tracking_events") == 13
    # an id loaded before that comes twice more in a new file, beside a new one twice: each counted once
    write_jsonl_atomic(landing / "tracking" / "d3.jsonl", [page(1), page(1), page(20), page(20)])
    added = load_all(con, landing)["tracking"]
    assert (added.files, added.lines, added.loaded_rows, added.duplicate_rows) == (1, 4, 1, 3)
    assert con.execute(
        "select lines, loaded_rows, duplicate_rows from raw.loaded_files where file = 'tracking/d3.jsonl'"
    ).fetchall() == [(4, 1, 3)]
    assert count(con, "tracking_events") == 14
    assert con.execute("select count(*) from raw.loaded_files").fetchall()[0][0] == 3


def test_malformed_lines_are_quarantined_with_file_line_and_reason_and_the_rest_loads(tmp_path, con):
    landing = tmp_path / "landing"
    lines = [
        json.dumps(page(1)),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({k: v for k, v in page(2).items() if k != "messageId"}),
        json.dumps(page(3, type="screen")),
        json.dumps(page(4, timestamp="yesterday")),
        json.dumps({k: v for k, v in page(5).items() if k != "anonymousId"}),
        json.dumps(page(6, userId="u-6", anonymousId=None)),
        "",
        json.dumps(page(7)),
    ]
    write_jsonl_atomic(landing / "tracking" / "mixed.jsonl", lines)
    result = load_source(con, landing, "tracking")
    assert result.loaded_rows == 3 and result.quarantined_rows == 6
    rows = con.execute("select file, line_number, reason from raw.quarantine order by line_number").fetchall()
    assert rows == [
        ("tracking/mixed.jsonl", 2, "invalid JSON"),
        ("tracking/mixed.jsonl", 3, "not a JSON object"),
        ("tracking/mixed.jsonl", 4, "missing required field: messageId"),
        ("tracking/mixed.jsonl", 5, "unsupported type: screen"),
        ("tracking/mixed.jsonl", 6, "timestamp is not an ISO-8601 date-time"),
        ("tracking/mixed.jsonl", 7, "missing required field: one of anonymousId or userId"),
    ]
    loaded = {r[0] for r in con.execute("select message_id from raw.tracking_events").fetchall()}
    assert loaded == {"m-1", "m-6", "m-7"}
    # a second load neither reloads the file nor quarantines its lines again
    load_source(con, landing, "tracking")
    assert con.execute("select count(*) from raw.quarantine").fetchall()[0][0] == 6


def test_stripe_lines_without_required_fields_are_quarantined(tmp_path, con):
    landing = tmp_path / "landing"
    bad = [
        stripe_event(1),
        {"id": "evt_x", "type": "a", "created": "soon", "data": {"object": {}}},
        {"id": "evt_y", "type": "a", "created": 1},
        {"type": "a", "created": 1, "data": {"object": {}}},
    ]
    write_jsonl_atomic(landing / "stripe_events" / "s.jsonl", bad)
    load_source(con, landing, "stripe_events")
    reasons = [r[0] for r in con.execute("select reason from raw.quarantine order by line_number").fetchall()]
    assert reasons == [
        "missing or non-integer field: created",
        "missing required field: data.object",
        "missing required field: id",
    ]
    assert count(con, "stripe_events") == 1


def test_gzipped_and_crlf_files_load_like_plain_ones(tmp_path, con):
    landing = tmp_path / "landing"
    (landing / "tracking").mkdir(parents=True)
    with gzip.open(landing / "tracking" / "z.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(page(i)) for i in range(4)) + "\n")
    (landing / "tracking" / "w.jsonl").write_bytes(
        ("\r\n".join(json.dumps(page(i)) for i in range(10, 13)) + "\r\n").encode()
    )
    result = load_source(con, landing, "tracking")
    assert result.loaded_rows == 7 and result.quarantined_rows == 0


def test_hidden_temporary_files_are_not_loaded(tmp_path, con):
    landing = tmp_path / "landing"
    (landing / "tracking").mkdir(parents=True)
    (landing / "tracking" / ".tmp-123-x.jsonl").write_text(json.dumps(page(1)) + "\n")
    assert load_source(con, landing, "tracking").files == 0


def test_landing_files_are_immutable(tmp_path):
    target = tmp_path / "tracking" / "a.jsonl"
    write_jsonl_atomic(target, [page(1)])
    with pytest.raises(FileExistsError):
        write_jsonl_atomic(target, [page(2)])
    assert json.loads(target.read_text())["messageId"] == "m-1"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]


def test_an_unreadable_file_is_quarantined_whole_and_the_other_files_still_load(tmp_path, con):
    landing = tmp_path / "landing"
    write_jsonl_atomic(landing / "tracking" / "a.jsonl", [page(1)])
    (landing / "tracking" / "b.jsonl.gz").write_bytes(b"this is not gzip")
    (landing / "tracking" / "c.jsonl").write_bytes(b"\xff\xfe binary \x00 garbage\n")
    write_jsonl_atomic(landing / "tracking" / "d.jsonl", [page(2)])
    result = load_source(con, landing, "tracking")
    assert count(con, "tracking_events") == 2 and result.files == 4
    rows = con.execute("select file, line_number, reason from raw.quarantine order by file").fetchall()
    # a corrupt gzip cannot be read at all; bytes that are not UTF-8 cost their line only
    assert [r[:2] for r in rows] == [("tracking/b.jsonl.gz", 0), ("tracking/c.jsonl", 1)]
    assert rows[0][2].startswith("unreadable file: not a readable gzip file")
    assert rows[1][2] == "line is not valid UTF-8"
    assert load_source(con, landing, "tracking").files == 0


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_file_larger_than_the_memory_limit_loads_in_pieces_with_its_own_line_numbers(tmp_path, gzipped):
    """DuckDB's reader holds a whole file as one value: a landing file larger than the memory limit failed every
    load (out of memory, not a bad line). It loads in pieces of whole lines, in one transaction, each line with
    its number in the file, duplicates found across pieces, bad lines quarantined where they are."""
    landing = tmp_path / "landing"
    padding = "x" * 900
    lines = [json.dumps(page(i, properties={"pad": padding})) for i in range(160_000)]  # about 170 MB
    lines[100_000] = '{"messageId": "broken'
    lines[150_000] = lines[10]  # the same message again, in another piece
    name = "big.jsonl.gz" if gzipped else "big.jsonl"
    write_jsonl_atomic(landing / "tracking" / name, lines)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), config={"memory_limit": "100MB"}) as con:
        result = load_source(con, landing, "tracking")
        assert (result.files, result.loaded_rows, result.quarantined_rows, result.duplicate_rows) == (1, 159_998, 1, 1)
        assert con.execute(
            "select count(*) from raw.tracking_events where message_id <> 'm-' || (_line - 1)"
        ).fetchall() == [(0,)]
        assert con.execute("select line_number from raw.quarantine").fetchall() == [(100_001,)]
        assert con.execute("select lines, loaded_rows from raw.loaded_files").fetchall() == [(160_000, 159_998)]
        assert load_source(con, landing, "tracking").files == 0
