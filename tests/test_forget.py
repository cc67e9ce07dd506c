"""Erasure on request (GDPR art. 17), as an operator runs it: `python -m orchestration.forget --email …` over a
warehouse the pipeline has built, with lines of the person in loaded files, in a file not loaded yet and in the
quarantine. Afterwards nothing of the person is left in the landing files, raw tables, models, snapshot, ledger
payloads or Dagster's storage; everyone else's answers are unchanged; and later runs do not bring them back."""

import gzip
import hashlib
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ingestion.landing import write_jsonl_atomic

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def landing_text(landing: Path) -> str:
    text = []
    for path in landing.rglob("*"):
        if path.is_file() and path.name.endswith((".jsonl", ".jsonl.gz")):
            text.append(
                (gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()).decode(
                    "utf-8", errors="replace"
                )
            )
    return "\n".join(text).lower()


def tables_holding(warehouse: Path, needles: list[str]) -> dict[str, int]:
    """Every table or view of the warehouse with a row whose text holds one of the needles (case-insensitive);
    the delivery ledger, which keeps event ids on purpose, is checked on its own."""
    found = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog') "
            "and table_name <> 'tiktok_deliveries'"
        ).fetchall():
            n = con.execute(
                f'select count(*) from "{schema}"."{name}" as t '
                "where list_has_any(?::varchar[], [n for n in ?::varchar[] "
                "if contains(lower(cast(t as varchar)), n)])",
                [needles, needles],
            ).fetchall()[0][0]
            if n:
                found[f"{schema}.{name}"] = n
    return found


def test_forget_erases_a_person_everywhere_and_only_them(workspace, tmp_path):
    workspace.add_world(visitors=400, seed=51, end_date=date.today())
    assert workspace.run().success
    victim = workspace.query("""
        select c.customer_id, c.emails from marts.tiktok_conversions c
        join reverse_etl.tiktok_deliveries d on d.event_id = c.event_id and d.payload is not null
        join intermediate.int_identity_components b on b.customer_id = c.customer_id and b.node_type = 'browser'
        where c.emails is not null and c.emails not like '%,%' and c.purchase_id is not null
        order by c.event_id limit 1""")[0]
    customer, email = victim
    nodes = workspace.query(
        "select node_type, node_value from intermediate.int_identity_components where customer_id = ?", [customer]
    )
    needles = sorted({v.lower() for t, v in nodes if t in ("email", "browser", "stripe_customer", "purchase", "user")})
    assert email in needles and any(t == "browser" for t, _ in nodes)
    others_before = set(
        workspace.query(
            "select purchase_id, amount, first_touch_campaign, first_touch_at from marts.attributed_purchases "
            "where customer_id <> ?",
            [customer],
        )
    )
    # the person typed their email again, in capitals, in a page not loaded yet; and a line with a broken byte
    browser = next(v for t, v in nodes if t == "browser")
    write_jsonl_atomic(
        workspace.landing / "tracking" / "later" / "new.jsonl",
        [
            {
                "messageId": "m-later",
                "type": "identify",
                "anonymousId": "b-new-device",
                "timestamp": "2026-11-30T10:00:00Z",
                "traits": {"email": email.upper()},
            },
            {
                "messageId": "m-someone-else",
                "type": "page",
                "anonymousId": "b-someone-else",
                "timestamp": "2026-11-30T10:00:00Z",
                "context": {"page": {"url": "https://shop.example/"}},
            },
        ],
    )
    (workspace.landing / "tracking" / "later" / "broken.jsonl").write_bytes(
        b'{"messageId": "m-broken\xff", "type": "page", "anonymousId": "' + browser.encode() + b'"}\n'
    )
    assert workspace.run().success
    assert workspace.query("select count(*) from raw.quarantine where line_text like ?", [f"%{browser}%"]) == [(1,)]

    analytics = workspace.root / "analytics.duckdb"
    assert tables_holding(analytics, needles), "the analysts' copy holds the person before"

    home = tmp_path / "dagster_home"
    env = {
        **os.environ,
        "LANDING_DIR": str(workspace.landing),
        "WAREHOUSE_PATH": str(workspace.warehouse),
        "DAGSTER_HOME": str(home),
        "DAGSTER_LOG_LEVEL": "WARNING",
    }
    out = subprocess.run(
        [sys.executable, "-m", "orchestration.forget", "--email", f"  {email.upper()} "],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    assert not [n for n in needles if n in landing_text(workspace.landing)], "no landing line names the person"
    assert "m-someone-else" in landing_text(workspace.landing)
    assert tables_holding(workspace.warehouse, needles + ["b-new-device"]) == {}
    assert analytics.exists(), "published again by the rebuild"
    assert tables_holding(analytics, needles + ["b-new-device"]) == {}
    ledger = workspace.query(
        "select count(*), count(payload) from reverse_etl.tiktok_deliveries d "
        "where list_contains(?::varchar[], lower(event_id))",
        [needles],
    )[0]
    assert ledger[0] >= 1 and ledger[1] == 0, "the ledger keeps the event ids (never sent twice), not the payloads"
    record = workspace.query(
        "select identifiers_sha256, customers, landing_lines, raw_tracking_events, "
        "raw_stripe_events, quarantined_lines, ledger_events from monitoring.erasures"
    )
    assert len(record) == 1
    hashes, customers, lines, tracking_rows, stripe_rows, quarantined, ledger_rows = record[0]
    assert hashes == [hashlib.sha256(email.encode()).hexdigest()]
    assert customers == 1 and lines == tracking_rows + stripe_rows + quarantined and tracking_rows and stripe_rows
    assert quarantined == 1 and ledger_rows >= 1
    assert workspace.query("select count(*) from monitoring.erasure_requests") == [(0,)]
    others_after = set(
        workspace.query(
            "select purchase_id, amount, first_touch_campaign, first_touch_at from marts.attributed_purchases"
        )
    )
    assert others_after == others_before, "everyone else's answers are unchanged"
    for path in home.rglob("*"):
        if path.is_file():
            assert email.encode() not in path.read_bytes().lower(), f"Dagster's storage names the person: {path}"

    assert workspace.run().success
    assert tables_holding(workspace.warehouse, needles + ["b-new-device"]) == {}
