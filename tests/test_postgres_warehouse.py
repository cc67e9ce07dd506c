"""The PostgreSQL warehouse (WAREHOUSE_URL) on a real PostgreSQL 15 server started by the test, over the same simulated
world as the DuckDB file: the same attributed purchases, credits and TikTok conversions (EXCEPT both ways), the
same events accepted by TikTok, after a full build and after an incremental one, and an analyst holding a
transaction open across a run."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import hypothesis
import pandas as pd
import pytest
from hypothesis import strategies as st

from fakes.tiktok import FakeTikTok
from ingestion import postgres_loader
from ingestion.config import PostgresWarehouse
from ingestion.landing import write_jsonl_atomic
from reverse_etl.deliver import DeliverySettings
from tests import test_fuzz as fuzz
from tests.conftest import DBT, DBT_PROJECT, Workspace, load_defs
from tests.postgres_server import server_with_database

TOKEN, PIXEL = "test-token", "TESTPIXEL"
NOW = datetime.now(UTC).replace(tzinfo=None)
COMPARED = ["marts.attributed_purchases", "marts.attribution_credits", "marts.tiktok_conversions"]


@pytest.fixture(autouse=True)
def dbt_environment():
    """dbt runs in the Dagster process and reads its warehouse from the process's environment, which the dbt asset
    sets (DBT_TARGET and TTATTR_PG_* for PostgreSQL): a test that ran the pipeline on PostgreSQL would leave it
    there for the next test of its worker. Put back as it was."""
    keys = [*PostgresWarehouse("host", 5432, "user", "", "db").dbt_env(), "WAREHOUSE_PATH"]
    saved = {key: os.environ.get(key) for key in keys}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def warehouse():
    with server_with_database("warehouse", "the PostgreSQL warehouse test") as (host, port, user):
        yield PostgresWarehouse(host=host, port=port, user=user, password="", dbname="warehouse")


def settings(fake) -> DeliverySettings:
    return DeliverySettings(
        access_token=TOKEN, pixel_code=PIXEL, api_base_url=fake.url, now=NOW, timeout_seconds=5,
        backoff_base_seconds=0.01, backoff_max_seconds=0.05,
    )  # fmt: skip


def build_postgres(ws: Workspace, wh: PostgresWarehouse, *args: str) -> None:
    with wh.connection() as pg:
        postgres_loader.load_all(pg, ws.landing)
    out = subprocess.run(
        [str(DBT), "build", *args, "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
         "--target-path", str(ws.root / "dbt_target_pg"), "--log-path", str(ws.root / "dbt_logs_pg")],
        env={**os.environ, **wh.dbt_env()}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def columns(duck, relation: str) -> list[str]:
    schema, table = relation.split(".")
    names = duck.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, table],
    ).fetchall()
    # (fingerprints are each warehouse's own hash of a row's inputs, and built_at when each build ran: for telling
    # what changed, not an answer)
    return [n for (n,) in names if not n.endswith("fingerprint") and n != "built_at"]


def differences(duck, wh: PostgresWarehouse, relation: str) -> tuple[int, int, list]:
    """Rows only DuckDB has and rows only PostgreSQL has (EXCEPT both ways, in DuckDB over a copy of PostgreSQL's
    rows); doubles compared to 9 significant digits, as two engines' floating-point sums differ in the last bits."""
    names = columns(duck, relation)
    types = dict(duck.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
        relation.split("."),
    ).fetchall())  # fmt: skip
    with wh.connection() as pg, pg.cursor() as cur:
        cur.execute(f"select {', '.join(names)} from {relation}")
        rows = [tuple(float(v) if isinstance(v, Decimal) else v for v in r) for r in cur.fetchall()]
    duck.execute(f"create or replace temp table pg_rows as select {', '.join(names)} from {relation} limit 0")
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    duck.register("pg_frame", frame)
    duck.execute("insert into pg_rows select * from pg_frame")

    def rounded(source: str) -> str:
        return "select " + ", ".join(
            f"round({n}, 9 - cast(ceil(log10(abs({n}) + 1e-12)) as integer)) as {n}" if types[n] == "DOUBLE" else n
            for n in names
        ) + f" from {source}"  # fmt: skip

    only_duck = duck.execute(f"{rounded(relation)} except all {rounded('pg_rows')}").fetchall()
    only_pg = duck.execute(f"{rounded('pg_rows')} except all {rounded(relation)}").fetchall()
    return len(only_duck), len(only_pg), (only_duck[:2], only_pg[:2])


def assert_same_answers(ws: Workspace, wh: PostgresWarehouse) -> dict[str, int]:
    counts = {}
    with duckdb.connect(str(ws.warehouse), read_only=True) as duck:
        for relation in COMPARED:
            only_duck, only_pg, sample = differences(duck, wh, relation)
            assert (only_duck, only_pg) == (0, 0), f"{relation} differs between DuckDB and PostgreSQL: {sample}"
            counts[relation] = duck.execute(f"select count(*) from {relation}").fetchall()[0][0]
    return counts


def pipeline_defs(ws: Workspace, fake: FakeTikTok, postgres: PostgresWarehouse | None):
    """The Dagster definitions as `make run` has them, over the DuckDB file or (``postgres``) the database, with
    deliveries going to ``fake``."""
    from orchestration.resources import TikTokResource, WarehouseResource

    resources = ws.resources()
    resources["tiktok"] = TikTokResource(access_token=TOKEN, pixel_code=PIXEL, api_base_url=fake.url)
    if postgres is not None:
        files = ws.root / "postgres_files"  # the analysts' copy and the report of the PostgreSQL pipeline
        resources["warehouse"] = WarehouseResource(path=str(files / "warehouse.duckdb"), url=postgres.url)
    return load_defs(resources)


def run_through_dagster(defs, instance) -> dict[str, bool]:
    """One `make run` (the `pipeline` job); returns every check's outcome by asset and name."""
    from orchestration.run import run_pipeline

    result = run_pipeline(instance=instance, defs=defs, log_level="WARNING")
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, f"the pipeline failed in {failed}"
    return {f"{c.asset_key.to_user_string()}:{c.check_name}": c.passed for c in result.get_asset_check_evaluations()}


def test_the_dagster_pipeline_on_postgres_gives_the_answers_checks_and_tiktok_events_of_duckdb(warehouse, tmp_path):
    """`make run` over each warehouse, full and then incremental: the same marts (EXCEPT both ways), the same
    outcome of every check (dbt tests and ours), the same events accepted by TikTok, each once, and the analysts'
    copy and the marketing report published from PostgreSQL too."""
    ws = Workspace(tmp_path)
    ws.add_world(visitors=450, seed=31, end_date=NOW.date())
    with (
        FakeTikTok([TOKEN], [PIXEL]) as fake_duck,
        FakeTikTok([TOKEN], [PIXEL]) as fake_pg,
        dg.instance_for_test() as instance_duck,
        dg.instance_for_test() as instance_pg,
    ):
        duck_defs, pg_defs = pipeline_defs(ws, fake_duck, None), pipeline_defs(ws, fake_pg, warehouse)
        checks = run_through_dagster(duck_defs, instance_duck)
        assert len(checks) > 50, "the dbt tests did not run as checks"
        assert run_through_dagster(pg_defs, instance_pg) == checks
        counts = assert_same_answers(ws, warehouse)
        assert counts["marts.attributed_purchases"] > 100 and counts["marts.attribution_credits"] > 1000
        assert fake_duck.accepted_events, "nothing reached TikTok: the world has no eligible conversion"
        assert fake_pg.accepted_events == fake_duck.accepted_events, "TikTok received different events"
        sent = len(fake_pg.accepted_events)

        # an increment: more visitors of the same days land; both pipelines build incrementally
        ws.add_world(visitors=150, seed=32, end_date=NOW.date())
        assert run_through_dagster(pg_defs, instance_pg) == run_through_dagster(duck_defs, instance_duck)
        assert assert_same_answers(ws, warehouse)["marts.attributed_purchases"] > counts["marts.attributed_purchases"]
        assert fake_pg.accepted_events == fake_duck.accepted_events and len(fake_pg.accepted_events) >= sent
        assert max(fake_pg.accepted.values()) == 1, "an event was sent twice from PostgreSQL"

    with warehouse.connection() as pg, pg.cursor() as cur:
        cur.execute("select status, count(*) from reverse_etl.tiktok_deliveries group by 1")
        ledger = dict(cur.fetchall())
    with duckdb.connect(str(ws.warehouse), read_only=True) as duck:
        assert ledger == dict(
            duck.execute("select status, count(*) from reverse_etl.tiktok_deliveries group by 1").fetchall()
        )
    copy = ws.root / "postgres_files" / "analytics.duckdb"
    with duckdb.connect(str(copy), read_only=True) as published:
        assert published.execute("select count(*) from marts.attributed_purchases").fetchall()[0][0] == (
            ws.scalar("select count(*) from marts.attributed_purchases")
        )
    assert (ws.root / "postgres_files" / "marketing_report.html").stat().st_size > 10_000


def test_an_analyst_holding_a_transaction_open_across_a_run_neither_blocks_it_nor_sees_it_half_done(
    warehouse, tmp_path
):
    ws = Workspace(tmp_path)
    ws.add_world(visitors=200, seed=41, end_date=NOW.date())
    build_postgres(ws, warehouse)
    analyst = warehouse.connect()
    analyst.set_session(isolation_level="REPEATABLE READ")
    cur = analyst.cursor()
    # every kind of relation analysts read: an incremental mart, table marts, a view
    read = """select (select count(*) from marts.attributed_purchases), (select count(*) from marts.customer_journeys),
                     (select count(*) from marts.report_revenue_by_channel), (select count(*) from marts.subscriptions),
                     (select count(*) from intermediate.int_identity_nodes)"""
    cur.execute(read)
    before = cur.fetchall()[0]
    ws.add_world(visitors=100, seed=42, end_date=NOW.date())
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            build_postgres(ws, warehouse)
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            failure.append(e)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    try:
        assert done.wait(120), "the run waited for the analyst's open transaction"
        assert not failure, failure
        cur.execute(read)
        assert cur.fetchall()[0] == before, "the analyst's transaction saw the run's writes"
    finally:
        analyst.rollback()
        analyst.close()
    with warehouse.connection() as fresh, fresh.cursor() as c:
        c.execute(read)
        assert c.fetchall()[0][0] > before[0], "a new transaction does not see the run's new purchases"


def test_the_postgres_loader_keeps_the_dedup_and_quarantine_contracts_line_by_line(warehouse, tmp_path):
    admin = warehouse.connect()
    admin.autocommit = True
    admin.cursor().execute("create database loader_contracts")
    admin.close()
    wh = PostgresWarehouse(warehouse.host, warehouse.port, warehouse.user, "", "loader_contracts")
    landing = tmp_path / "landing"
    (landing / "tracking").mkdir(parents=True)

    def line(message_id: str, name: str = "Viewed") -> str:
        return json.dumps({"messageId": message_id, "type": "track", "event": name, "anonymousId": "b1",
                           "timestamp": "2026-11-20T10:00:00Z"})  # fmt: skip

    (landing / "tracking" / "a.jsonl").write_text(line("m1") + "\n" + line("m2") + "\n")
    with wh.connection() as pg:
        first = postgres_loader.load_all(pg, landing)["tracking"]
    assert (first.loaded_rows, first.duplicate_rows, first.quarantined_rows) == (2, 0, 0)
    (landing / "tracking" / "b.jsonl").write_text(
        "\n".join([
            line("m2"),  # loaded by the earlier batch
            line("m3"),
            line("m3"),  # twice in this batch
            line("m4", "nul ESCAPE inside").replace("ESCAPE", "\\u0000"),  # jsonb cannot hold NUL
            line("m5", "huge").replace('"event"', '"value": 1e200000, "event"'),  # nor a number past numeric
            "{not json",
            line("m6"),
        ]) + "\n"
    )  # fmt: skip
    with wh.connection() as pg:
        second = postgres_loader.load_all(pg, landing)["tracking"]
        with pg.cursor() as cur:
            cur.execute("select message_id from raw.tracking_events order by 1")
            ids = [r[0] for r in cur.fetchall()]
            cur.execute("select line_number, reason from raw.quarantine order by 1")
            quarantined = cur.fetchall()
            cur.execute(
                "select loaded_rows, duplicate_rows, quarantined_rows from raw.loaded_files where file = %s",
                ["tracking/b.jsonl"],
            )
            recorded = cur.fetchall()
    assert ids == ["m1", "m2", "m3", "m6"]
    assert [n for n, _ in quarantined] == [4, 5, 6]
    assert "NUL" in quarantined[0][1] and "jsonb" in quarantined[1][1] and "JSON" in quarantined[2][1]
    assert (second.loaded_rows, second.duplicate_rows, second.quarantined_rows) == (2, 2, 3)
    assert recorded == [(2, 2, 3)]
    with wh.connection() as pg:
        again = postgres_loader.load_all(pg, landing)["tracking"]
    assert (again.files, again.loaded_rows) == (0, 0), "a file was loaded twice"


def test_a_load_in_many_batches_keeps_the_contracts_while_postgres_inserts_one_and_duckdb_reads_the_next(
    warehouse, tmp_path
):
    """Batches overlap (one inserted in PostgreSQL while the next is read): duplicates across batches of one load,
    a line jsonb refuses in a middle batch, the record of each file, and nothing loaded twice."""
    wh = new_database(warehouse, "loader_batches")
    landing = tmp_path / "landing"
    (landing / "tracking").mkdir(parents=True)
    ids = []
    for k in range(12):
        lines = [{"messageId": f"m{k}-{n}", "type": "track", "event": "Viewed", "anonymousId": f"b{k}",
                  "timestamp": "2026-11-20T10:00:00Z"} for n in range(40)]  # fmt: skip
        ids += [x["messageId"] for x in lines]
        if k:
            lines.append(dict(lines[0], messageId=f"m{k - 1}-0"))  # the previous file's (batch's) first event
        if k == 6:
            lines.append(dict(lines[1], messageId="huge", value="HUGE"))
        text = "\n".join(json.dumps(x) for x in lines).replace('"HUGE"', "1e200000")
        (landing / "tracking" / f"f{k:02}.jsonl").write_text(text + "\n")
    with wh.connection() as pg:
        load = postgres_loader.load_source(pg, landing, "tracking", batch_bytes=8_000)
        with pg.cursor() as cur:
            cur.execute("select message_id from raw.tracking_events")
            loaded = sorted(r[0] for r in cur.fetchall())
            cur.execute("select sum(loaded_rows), sum(duplicate_rows), sum(quarantined_rows), count(*) "
                        "from raw.loaded_files")  # fmt: skip
            recorded = cur.fetchall()[0]
    assert load.files == 12 and (load.loaded_rows, load.duplicate_rows, load.quarantined_rows) == (480, 11, 1)
    assert loaded == sorted(ids) and recorded == (480, 11, 1, 12)
    with wh.connection() as pg:
        assert postgres_loader.load_source(pg, landing, "tracking", batch_bytes=8_000).files == 0


def test_a_batch_of_new_ids_that_jsonb_refuses_a_line_of_loads_all_but_that_line(warehouse, tmp_path):
    """A batch whose ids PostgreSQL has none of goes straight in with COPY; a line jsonb refuses there (a number
    past numeric's range) fails that COPY, and the batch takes the insert that quarantines the line alone."""
    wh = new_database(warehouse, "loader_straight_in")
    landing = tmp_path / "landing"
    (landing / "tracking").mkdir(parents=True)
    lines = [json.dumps({"messageId": f"m{n}", "type": "track", "event": "Viewed", "anonymousId": "b1",
                         "timestamp": "2026-11-20T10:00:00Z"}) for n in range(5)]  # fmt: skip
    lines[3] = lines[3].replace('"event"', '"value": 1e200000, "event"')
    (landing / "tracking" / "a.jsonl").write_text("\n".join(lines) + "\n")
    with wh.connection() as pg:
        load = postgres_loader.load_all(pg, landing)["tracking"]
        with pg.cursor() as cur:
            cur.execute("select message_id from raw.tracking_events order by 1")
            loaded = [r[0] for r in cur.fetchall()]
            cur.execute("select line_number, reason from raw.quarantine")
            quarantined = cur.fetchall()
            cur.execute("select loaded_rows, duplicate_rows, quarantined_rows from raw.loaded_files")
            recorded = cur.fetchall()
    assert loaded == ["m0", "m1", "m2", "m4"]
    assert len(quarantined) == 1 and quarantined[0][0] == 4 and "jsonb" in quarantined[0][1]
    assert (load.loaded_rows, load.duplicate_rows, load.quarantined_rows) == (4, 0, 1) and recorded == [(4, 0, 1)]


def test_the_warehouse_url_reaches_dagster_without_its_password_showing(monkeypatch):
    from orchestration.resources import default_resources

    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://analytics:s3cret%2F@db.internal:6432/shop")
    resource = default_resources()["warehouse"]
    assert "s3cret" not in repr(resource)
    # an EnvVar: resolved when a run starts, never stored in the run's config
    assert isinstance(resource.url, dg.EnvVar) and resource.url.env_var_name == "WAREHOUSE_URL"
    parsed = PostgresWarehouse.from_url("postgresql://analytics:s3cret%2F@db.internal:6432/shop")
    assert parsed.password == "s3cret/" and PostgresWarehouse.from_url(parsed.url) == parsed


@pytest.fixture(scope="module")
def fuzz_base(warehouse, tmp_path_factory):
    """A small world built on PostgreSQL once, as a template database each hostile example starts from."""
    ws = Workspace(tmp_path_factory.mktemp("pg_fuzz_base"))
    ws.add_world(visitors=120, seed=51)
    admin = warehouse.connect()
    admin.autocommit = True
    admin.cursor().execute("create database fuzz_base")
    base = PostgresWarehouse(warehouse.host, warehouse.port, warehouse.user, "", "fuzz_base")
    build_postgres(ws, base)
    with base.connection() as pg, pg.cursor() as cur:
        cur.execute(FUZZ_ANSWERS)
        answers = cur.fetchall()
    yield ws, admin, answers
    admin.close()


FUZZ_ANSWERS = (
    "select purchase_id, customer_id, amount, first_touch_channel, first_touch_ttclid "
    "from marts.attributed_purchases order by purchase_id"
)
_examples = iter(range(1000))


@hypothesis.settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
@hypothesis.given(
    messages=st.lists(fuzz.tracking_message(), min_size=20, max_size=40),
    events=st.lists(fuzz.stripe_event(), min_size=10, max_size=20),
)
def test_hostile_lines_never_fail_a_postgres_build_nor_change_its_answers(warehouse, fuzz_base, messages, events):
    world, admin, answers = fuzz_base
    name = f"fuzz_{next(_examples)}"
    admin.cursor().execute(f"create database {name} template fuzz_base")
    wh = PostgresWarehouse(warehouse.host, warehouse.port, warehouse.user, "", name)
    with tempfile.TemporaryDirectory(prefix="pg-fuzz-") as tmp:
        ws = Workspace(Path(tmp))
        shutil.copytree(world.landing, ws.landing)
        write_jsonl_atomic(ws.landing / "tracking" / "fuzz" / "m.jsonl", [json.dumps(m) for m in messages])
        write_jsonl_atomic(ws.landing / "stripe_events" / "fuzz" / "e.jsonl", [json.dumps(e) for e in events])
        build_postgres(ws, wh)  # an incremental build over the hostile lines: asserts dbt's exit code
    fuzz_ids = {e["data"]["object"]["id"] for e in events}
    with wh.connection() as pg, pg.cursor() as cur:
        cur.execute(FUZZ_ANSWERS)
        assert [r for r in cur.fetchall() if r[0] not in fuzz_ids] == answers
    admin.cursor().execute(f"drop database {name}")


def _demo_report(tmp_path: Path, warehouse: str) -> str:
    """What `make demo` prints (`--warehouse`, a small world), from the report's first line to what TikTok
    accepted, both included (the run's id and the fakes' ports differ between runs)."""
    root = tmp_path / warehouse
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster_home")}
    env.pop("WAREHOUSE_URL", None)
    (root / "dagster_home").mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-m", "simulator.demo", "--dir", str(root / "demo"), "--visitors", "300", "--seed", "5",
         "--warehouse", warehouse],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    start = text.index("succeeded\n") + len("succeeded\n")
    end = text.index("\n", text.index("What the (fake) TikTok Events API accepted"))
    return text[start:end]


def test_the_demo_on_a_throwaway_postgres_server_prints_the_report_of_the_demo_on_duckdb(tmp_path):
    from simulator.postgres_server import binaries

    if binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("the PostgreSQL demo must run in CI: the PostgreSQL server binaries are not installed")
        pytest.skip("PostgreSQL server binaries are not installed (Debian: apt-get install postgresql-15)")
    on_duckdb = _demo_report(tmp_path, "duckdb")
    assert "Net revenue by first-touch channel" in on_duckdb
    on_postgres = _demo_report(tmp_path, "postgres")
    assert _same_but_last_digit(on_postgres, on_duckdb), (on_postgres, on_duckdb)
    # the analysts' copies hold the same relations with the same column types (fingerprints: each engine's own hash)
    copies = [_column_types(tmp_path / w / "demo" / "analytics.duckdb") for w in ("duckdb", "postgres")]
    assert copies[0] == copies[1], {k: (copies[0].get(k), copies[1].get(k)) for k in copies[0].keys() ^ copies[1].keys()
                                    or [k for k in copies[0] if copies[0][k] != copies[1][k]]}  # fmt: skip


def _same_but_last_digit(a: str, b: str) -> bool:
    """The same text, numbers allowed to differ by one unit of their last printed digit: money converted at a
    float rate and summed in another order can differ in the last bits, which rounding to cents can show (the
    marts' equality test compares doubles to 9 significant digits for the same reason)."""
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb, strict=True):
        if x == y:
            continue
        try:
            fx, fy = float(x.replace(",", "")), float(y.replace(",", ""))
        except ValueError:
            return False
        decimals = len(x.rpartition(".")[2]) if "." in x else 0
        if abs(fx - fy) > 1.5 * 10**-decimals:
            return False
    return True


def _column_types(path: Path) -> dict[tuple[str, str, str], str]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            "where column_name not like '%fingerprint'"
        ).fetchall()
    return {(schema, table, column): kind for schema, table, column, kind in rows}


def new_database(warehouse: PostgresWarehouse, name: str) -> PostgresWarehouse:
    """Another database on the test's server, with the raw schema and the ledger (what the loader creates)."""
    import psycopg2

    admin = psycopg2.connect(host=warehouse.host, port=warehouse.port, user=warehouse.user, dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"create database {name}")
    admin.close()
    database = PostgresWarehouse(warehouse.host, warehouse.port, warehouse.user, "", name)
    with database.connection() as pg:
        postgres_loader.ensure_postgres_schema(pg)
    return database


def test_review_failures_records_the_reviews_in_the_postgres_ledger(warehouse, monkeypatch, capsys):
    from reverse_etl.cli import main as reverse_etl_main

    reviews = new_database(warehouse, "reviews")
    with reviews.connection() as pg, pg.cursor() as cur:
        cur.execute(
            "insert into reverse_etl.tiktok_deliveries (event_id, event_name, status, attempts, last_code, "
            "last_message, recorded_at) values ('in_1', 'CompletePayment', 'failed_permanent', 1, 40002, "
            "'invalid value', now() at time zone 'UTC'), ('in_2', 'CompletePayment', 'sent', 1, 0, 'OK', "
            "now() at time zone 'UTC')"
        )
    monkeypatch.setenv("WAREHOUSE_URL", reviews.url)
    assert reverse_etl_main(["--review-failures", "analyst@example.com", "--note", "price was 0"]) == 0
    assert "1 x code 40002: invalid value" in capsys.readouterr().out
    with reviews.connection() as pg, pg.cursor() as cur:
        cur.execute("select event_id, reviewed_by, note from reverse_etl.tiktok_failure_reviews")
        assert cur.fetchall() == [("in_1", "analyst@example.com", "price was 0")]
    assert reverse_etl_main(["--review-failures", "analyst@example.com"]) == 0
    assert "0 failed_permanent events marked reviewed" in capsys.readouterr().out


def test_the_demo_refuses_a_database_that_already_holds_a_warehouse(warehouse, tmp_path, monkeypatch):
    from simulator import demo

    occupied = new_database(warehouse, "occupied")
    for name in ("WAREHOUSE_URL", "LANDING_DIR", "WAREHOUSE_PATH"):  # restored afterwards (the demo sets the last two)
        monkeypatch.setenv(name, occupied.url if name == "WAREHOUSE_URL" else str(tmp_path / name))
    with pytest.raises(SystemExit, match="already holds a warehouse"):
        demo.main(["--dir", str(tmp_path / "demo"), "--visitors", "10"])
    assert not (tmp_path / "demo" / "landing").exists(), "the demo simulated a world before refusing"


def test_a_long_chain_of_identities_is_one_customer_on_both_warehouses(warehouse, tmp_path):
    """Browsers linked in a line, each to the next by a shared phone or email (one of each per browser, within the
    guards): about 900 identifiers, each two steps from the next browser, in one component. Min-label propagation
    alone would need a round per step; the SQL stitch's pointer jumping and frontier must still reach one id, the
    one DuckDB's stitch gives."""
    browsers = 300
    lines = [
        json.dumps(
            {
                "messageId": f"chain-{k}",
                "type": "identify",
                "anonymousId": f"chain-browser-{k}",
                "traits": {"email": f"chain{k // 2}@mailbox.org", "phone": f"+1202555{(k + 1) // 2:04d}"},
                "timestamp": "2026-11-20T10:00:00Z",
            }
        )  # fmt: skip
        for k in range(1, browsers + 1)
    ]
    ws = Workspace(tmp_path)
    (ws.landing / "tracking").mkdir(parents=True)
    (ws.landing / "tracking" / "chain.jsonl").write_text("\n".join(lines) + "\n")
    ws.dbt("build", "--select", "+int_identity_components", "--exclude-resource-type", "unit_test")
    chain = new_database(warehouse, "chain")
    with chain.connection() as pg:
        postgres_loader.load_all(pg, ws.landing)
    out = subprocess.run(
        [str(DBT), "build", "--select", "+int_identity_components", "--exclude-resource-type", "unit_test",
         "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
         "--target-path", str(ws.root / "dbt_target_pg"), "--log-path", str(ws.root / "dbt_logs_pg")],
        env={**os.environ, **chain.dbt_env()}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:]
    # the component of the chain's first browser, with its customer id
    query = (
        "select node, customer_id from intermediate.int_identity_components where customer_id = "
        "(select customer_id from intermediate.int_identity_components where node = 'browser:chain-browser-1')"
    )
    duck = dict(ws.query(query))
    with chain.connection() as pg, pg.cursor() as cur:
        cur.execute(query)
        postgres = dict(cur.fetchall())
    # 300 browsers, 151 emails (chain0 to chain150), 150 phones
    assert len(duck) == browsers + (browsers // 2 + 1) + browsers // 2, "the chain is not one customer on DuckDB"
    assert postgres == duck


def test_the_incremental_stitch_on_postgres_gives_the_ids_of_duckdb_through_a_merge_a_split_and_new_people(
    warehouse, tmp_path
):
    """Both warehouses build the identity graph, then take increments: a site account that joins two buyers (a
    merge), a browser that reveals a second email (its edges are dropped: a split), then new visitors. After each,
    PostgreSQL's components and ids are DuckDB's (whose incremental stitch equals a full one:
    tests/test_identity_components.py); PostgreSQL stitched only what changed (the other rows were not rewritten)
    and kept exactly the used edges it stitched."""
    from tests.test_customer_ids import identify

    db = new_database(warehouse, "stitching")
    ws = Workspace(tmp_path)
    ws.add_world(visitors=120, seed=81, end_date=NOW.date())
    select = ("--select", "+int_identity_components", "--exclude-resource-type", "unit_test")
    components = "select node, customer_id, component_size from intermediate.int_identity_components"

    def build_and_compare() -> dict:
        ws.dbt("build", *select)
        build_postgres(ws, db, *select)
        with db.connection() as pg, pg.cursor() as cur:
            cur.execute(components)
            postgres = {n: (c, k) for n, c, k in cur.fetchall()}
            cur.execute("select count(*) from monitoring.stitch_pending")
            assert cur.fetchall() == [(0,)]
            cur.execute("select left_node, right_node from monitoring.stitched_edges except all "
                        "select left_node, right_node from intermediate.int_identity_edges where is_used")  # fmt: skip
            assert cur.fetchall() == []
            cur.execute("select count(*) from monitoring.stitched_edges")
            kept = cur.fetchall()[0][0]
            cur.execute("select node, xmin::text from intermediate.int_identity_components")
            versions = dict(cur.fetchall())
        assert kept == ws.scalar("select count(*) from intermediate.int_identity_edges where is_used")
        assert postgres == {n: (c, k) for n, c, k in ws.query(components)}
        return versions

    first = build_and_compare()
    (a_email,), (b_email,) = ws.query(
        "select min(node_value) from intermediate.int_identity_components where node_type = 'email' "
        "and component_size >= 3 group by customer_id order by 1 limit 2"
    )
    (c_browser,) = ws.query(
        "select node_value from intermediate.int_identity_components where node_type = 'browser' "
        "and component_size >= 3 order by node limit 1"
    )[0]
    write_jsonl_atomic(
        ws.landing / "tracking" / "later" / "ids.jsonl",
        [
            identify("m-merge-a", "b-merge-1", "2026-11-30T10:00:00Z", user_id="u-merge", email=a_email),
            identify("m-merge-b", "b-merge-2", "2026-11-30T10:05:00Z", user_id="u-merge", email=b_email),
            identify("m-split-1", c_browser, "2026-11-30T10:10:00Z", email="second.person@fastmail.com"),
            identify("m-split-2", c_browser, "2026-11-30T10:11:00Z", email="third.person@fastmail.com"),
        ],
    )
    second = build_and_compare()
    with db.connection() as pg, pg.cursor() as cur:
        cur.execute("select why, count(*) from monitoring.customer_id_changes group by why")
        assert set(dict(cur.fetchall())) == {"merged", "split"}
    unchanged = [n for n, version in second.items() if first.get(n) == version]
    assert unchanged and len(unchanged) > len(second) // 2, "PostgreSQL stitched every component again"
    ws.add_world(visitors=40, seed=82, end_date=NOW.date())
    build_and_compare()


def test_the_sensors_read_a_postgres_warehouse(warehouse, tmp_path):
    """The landing sensor asks PostgreSQL which files are loaded; the retry sensor finds the retryable events due
    there (before the first build: a skip, not an error)."""
    from orchestration.defs.activation import tiktok_retry_sensor
    from orchestration.defs.automation import landing_zone_sensor
    from orchestration.resources import LandingZoneResource, TikTokResource, WarehouseResource

    sensed = new_database(warehouse, "sensed")
    landing = tmp_path / "landing"
    resources = {
        "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb"), url=sensed.url),
        "landing_zone": LandingZoneResource(path=str(landing)),
        "tiktok": TikTokResource(),
    }
    page = {"messageId": "m1", "type": "page", "timestamp": "2026-06-01T00:00:00Z", "anonymousId": "b"}
    write_jsonl_atomic(landing / "tracking" / "a.jsonl", [page])

    def tick(sensor):
        needs = ("landing_zone", "warehouse") if sensor is landing_zone_sensor else ("warehouse", "tiktok")
        with dg.build_sensor_context(resources={k: resources[k] for k in needs}) as ctx:
            return sensor(ctx)

    assert len(tick(landing_zone_sensor).run_requests) == 1
    with sensed.connection() as pg:
        postgres_loader.load_all(pg, landing)
    assert not tick(landing_zone_sensor).run_requests, "a file PostgreSQL has loaded started a run"

    assert "no TikTok conversions built yet" in tick(tiktok_retry_sensor).skip_reason.skip_message
    with sensed.connection() as pg, pg.cursor() as cur:
        # the two relations the delivery reads, as the dbt build leaves them (the columns the sensor reads)
        cur.execute("create schema marts")
        cur.execute("create table marts.tiktok_conversions (event_id text, event_time timestamp)")
        cur.execute("create table marts.tiktok_conversion_contents (event_id text)")
        cur.execute(
            "insert into marts.tiktok_conversions values ('in_1', now() at time zone 'UTC' - interval '1 hour');"
            "insert into reverse_etl.tiktok_deliveries (event_id, event_name, status, attempts, last_code, "
            "last_attempt_at, recorded_at) values ('in_1', 'CompletePayment', 'failed_retryable', 1, 50000, "
            "now() at time zone 'UTC' - interval '1 hour', now() at time zone 'UTC' - interval '1 hour')"
        )
    due = tick(tiktok_retry_sensor)
    assert len(due.run_requests) == 1 and due.run_requests[0].tags["tiktok/due"] == "1"


def postgres_tables_holding(db: PostgresWarehouse, needles: list[str]) -> dict[str, int]:
    """tests/test_forget.py's `tables_holding` over every table and view of a PostgreSQL database."""
    found = {}
    with db.connection() as pg, pg.cursor() as cur:
        cur.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog') and table_name <> 'tiktok_deliveries'"
        )
        for schema, name in cur.fetchall():
            cur.execute(
                f'select count(*) from "{schema}"."{name}" as t where exists '
                "(select 1 from unnest(%s::text[]) as n where strpos(lower(t::text), n) > 0)",
                [needles],
            )
            n = cur.fetchall()[0][0]
            if n:
                found[f"{schema}.{name}"] = n
    return found


def test_forget_on_postgres_erases_a_person_everywhere_and_only_them(warehouse, tmp_path):
    """`python -m orchestration.forget --email ...` with WAREHOUSE_URL set, as tests/test_forget.py runs it on DuckDB:
    afterwards nothing of the person is left in the landing files, the database (raw tables, models, stitch
    registry, snapshot), the ledger's payloads or the analysts' copy; everyone else's purchases are unchanged; the
    models are rebuilt, and a later run does not bring the person back."""
    from tests.test_forget import landing_text, tables_holding

    db = new_database(warehouse, "forgetting")
    ws = Workspace(tmp_path)
    ws.add_world(visitors=300, seed=53, end_date=NOW.date())
    with FakeTikTok([TOKEN], [PIXEL]) as fake, dg.instance_for_test() as instance:
        defs = pipeline_defs(ws, fake, db)
        run_through_dagster(defs, instance)
        assert fake.accepted_events

        def query(sql: str, params=()) -> list[tuple]:
            with db.connection() as pg, pg.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()

        customer, email = query("""
            select c.customer_id, c.emails from marts.tiktok_conversions c
            join reverse_etl.tiktok_deliveries d on d.event_id = c.event_id and d.payload is not null
            join intermediate.int_identity_components b on b.customer_id = c.customer_id and b.node_type = 'browser'
            where c.emails is not null and c.emails not like '%%,%%' and c.purchase_id is not null
            order by c.event_id limit 1""")[0]
        nodes = query(
            "select node_type, node_value from intermediate.int_identity_components where customer_id = %s", [customer]
        )
        kinds = ("email", "browser", "stripe_customer", "purchase", "user")
        needles = sorted({v.lower() for t, v in nodes if t in kinds})
        assert email in needles and postgres_tables_holding(db, needles)
        others = ("select purchase_id, amount, first_touch_campaign, first_touch_at from marts.attributed_purchases "
                  "where customer_id <> %s")  # fmt: skip
        others_before = set(query(others, [customer]))
        copy = ws.root / "postgres_files" / "analytics.duckdb"
        assert tables_holding(copy, needles), "the analysts' copy holds the person before"

        env = {
            **os.environ,
            "WAREHOUSE_URL": db.url,
            "WAREHOUSE_PATH": str(ws.root / "postgres_files" / "warehouse.duckdb"),
            "LANDING_DIR": str(ws.landing),
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
            "DAGSTER_LOG_LEVEL": "WARNING",
        }
        out = subprocess.run(
            [sys.executable, "-m", "orchestration.forget", "--email", email.upper()],
            cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

        assert not [n for n in needles if n in landing_text(ws.landing)], "a landing line names the person"
        assert postgres_tables_holding(db, needles) == {}
        assert tables_holding(copy, needles) == {}, "the analysts' copy, published again, holds the person"
        rows, payloads = query(
            "select count(*), count(payload) from reverse_etl.tiktok_deliveries where lower(event_id) = any(%s)",
            [needles],
        )[0]
        assert rows >= 1 and payloads == 0, "the ledger keeps the event ids (never sent twice), not the payloads"
        (record,) = query(
            "select identifiers_sha256, customers, raw_tracking_events, raw_stripe_events, ledger_events "
            "from monitoring.erasures"
        )
        assert record[0] == [hashlib.sha256(email.encode()).hexdigest()]
        assert record[1] == 1 and record[2] and record[3] and record[4] >= 1
        assert query("select count(*) from monitoring.erasure_requests") == [(0,)]
        assert set(query(others.replace("where customer_id <> %s", ""))) == others_before

        run_through_dagster(defs, instance)
        assert postgres_tables_holding(db, needles) == {}


def test_the_incremental_identity_edges_on_postgres_are_those_of_duckdb_when_a_stripe_state_takes_edges_away(
    warehouse, tmp_path
):
    """The steps of tests/test_identity_edges.py (an edge a newer customer state takes away, and the shared email at
    its other end merging its customers again) on both warehouses: after each incremental build PostgreSQL's edges
    and stitched customers are DuckDB's, whose incremental builds equal full ones."""
    from tests.test_identity_edges import land_step

    db = new_database(warehouse, "edges")
    ws = Workspace(tmp_path)
    select = ("--select", "+int_identity_components", "--exclude-resource-type", "unit_test")
    components = "select node, customer_id, component_size from intermediate.int_identity_components"
    listed = ("left_node, right_node, left_type, right_type, edge_source, first_seen_at, last_seen_at, times_seen, "
              "first_claimed_at, is_verified, is_used, unused_reason, refused_node, left_refused_reason, "
              "right_refused_reason")  # fmt: skip
    for step in (0, 1):
        land_step(ws, step)
        ws.dbt("build", *select)
        build_postgres(ws, db, *select)
        with db.connection() as pg, pg.cursor() as cur:
            cur.execute(f"select {listed} from intermediate.int_identity_edges")
            postgres = sorted(cur.fetchall())
            cur.execute(components)
            stitched = sorted(cur.fetchall())
        assert postgres == sorted(ws.query(f"select {listed} from intermediate.int_identity_edges"))
        assert stitched == sorted(ws.query(components))
    assert ("stripe_customer:cus_s00", "email:shared@shopmail.co") not in {r[:2] for r in postgres}
    assert "phone:+14155550100" not in {r[0] for r in stitched}


def test_the_pipelines_sessions_run_without_jit_unless_the_url_says_otherwise(warehouse, tmp_path):
    """JIT compilation cost more than the models' queries themselves (docs/decisions.md, 2026-12-07): the sessions
    of the pipeline (its own and dbt's, through libpq's PGOPTIONS) have it off; the URL's ``options`` replaces
    that."""
    assert PostgresWarehouse.from_url("postgresql://u@h/d").options == "-c jit=off"
    chosen = PostgresWarehouse.from_url("postgresql://u@h/d?options=-c%20jit%3Don")
    assert chosen.options == "-c jit=on" and PostgresWarehouse.from_url(chosen.url) == chosen
    with warehouse.connection() as pg, pg.cursor() as cur:
        cur.execute("show jit")
        assert cur.fetchall() == [("off",)]
    out = subprocess.run(
        [str(DBT), "show", "--inline", "select current_setting('jit') as jit", "--project-dir", str(DBT_PROJECT),
         "--profiles-dir", str(DBT_PROJECT), "--target-path", str(tmp_path / "t"), "--log-path", str(tmp_path / "l")],
        env={**os.environ, **warehouse.dbt_env()}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:]
    assert re.search(r"\|\s*off\s*\|", out.stdout), out.stdout[-1000:]
