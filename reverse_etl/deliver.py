"""Record TikTok conversions in the delivery ledger.

Without credentials (the default) this is a dry run: each eligible conversion not yet in the ledger gets its
hashed payload recorded with status ``dry_run``, and each conversion whose customer denied advertising consent
is recorded ``no_consent``; nothing is sent. Running again records nothing new for the same conversions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb

from reverse_etl.ledger import TABLE, ensure_ledger
from reverse_etl.payload import PayloadSettings, build_event

CONVERSIONS = "marts.tiktok_conversions"


class DeliveryNotAvailable(RuntimeError):
    """Raised when credentials ask for a real send that this version cannot do."""


@dataclass(frozen=True)
class DeliverySettings:
    access_token: str | None = None
    pixel_code: str | None = None
    test_event_code: str | None = None
    payload: PayloadSettings = field(default_factory=PayloadSettings)

    @property
    def dry_run(self) -> bool:
        return not (self.access_token and self.pixel_code)


@dataclass
class DeliveryResult:
    dry_run: bool
    recorded_dry_run: int = 0
    recorded_no_consent: int = 0
    already_in_ledger: int = 0
    ineligible_not_recorded: int = 0


def record_deliveries(con: duckdb.DuckDBPyConnection, settings: DeliverySettings) -> DeliveryResult:
    if not settings.dry_run:
        raise DeliveryNotAvailable(
            "TIKTOK_ACCESS_TOKEN and TIKTOK_PIXEL_CODE are set, but sending to the TikTok Events API is not "
            "built yet (the HTTP client, retries and batching are the next step). Unset them to record dry runs.")
    ensure_ledger(con)
    result = DeliveryResult(dry_run=True)
    rows = con.execute(f"""
        select c.* from {CONVERSIONS} c
        where not exists (select 1 from {TABLE} l where l.event_id = c.event_id)
        order by c.event_time, c.event_id
    """)
    columns = [d[0] for d in rows.description]
    pending = [dict(zip(columns, r)) for r in rows.fetchall()]
    result.already_in_ledger = con.execute(f"select count(*) from {TABLE}").fetchone()[0]
    now = con.execute("select cast(now() at time zone 'UTC' as timestamp)").fetchone()[0]
    dry, no_consent = [], []
    for row in pending:
        if row["ineligible_reason"] == "no_consent":
            no_consent.append((row["event_id"], row["event_name"], now))
        elif row["eligible"]:
            payload = json.dumps(build_event(row, settings.payload), separators=(",", ":"))
            dry.append((row["event_id"], row["event_name"], now, payload))
        else:
            # no match key yet, or still settling: not recorded, so a later run can still send it
            result.ineligible_not_recorded += 1
    con.execute("begin transaction")
    try:
        if dry:
            con.executemany(f"insert into {TABLE} (event_id, event_name, status, recorded_at, payload) "
                            "values (?, ?, 'dry_run', ?, ?)", dry)
        if no_consent:
            con.executemany(f"insert into {TABLE} (event_id, event_name, status, recorded_at) "
                            "values (?, ?, 'no_consent', ?)", no_consent)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    result.recorded_dry_run = len(dry)
    result.recorded_no_consent = len(no_consent)
    return result
