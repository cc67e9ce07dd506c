"""Checks of our own, beside the dbt tests (which dagster-dbt turns into asset checks): what a data team wants
to hear about before a marketer does."""

import os

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from orchestration.defs.activation import tiktok_deliveries
from orchestration.defs.dbt import dbt_models
from orchestration.defs.ingestion import WAREHOUSE_POOL, raw_stripe_events, raw_tracking_events
from orchestration.resources import WarehouseResource
from reverse_etl.ledger import SCHEMA as LEDGER_SCHEMA
from reverse_etl.ledger import TABLE as LEDGER
from reverse_etl.ledger import unreviewed_failures

LEDGER_KEY = tiktok_deliveries.key
PURCHASES_KEY = get_asset_key_for_model([dbt_models], "attributed_purchases")
RAW = {"stripe_events": raw_stripe_events.key, "tracking_events": raw_tracking_events.key}


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        raise dg.Failure(description=f"{name} must be a number") from None


@dg.asset_check(
    asset=LEDGER_KEY,
    pool=WAREHOUSE_POOL,
    blocking=True,
    description="The ledger holds one row per event id: a conversion is never recorded (or sent) twice.",
)
def one_row_per_event_id(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        rows, distinct = con.execute(f"select count(*), count(distinct event_id) from {LEDGER}").fetchall()[0]
    return dg.AssetCheckResult(passed=rows == distinct, metadata={"rows": rows, "duplicate_rows": rows - distinct})


@dg.asset_check(
    asset=LEDGER_KEY,
    pool=WAREHOUSE_POOL,
    description="Every conversion TikTok refused for good has been looked at: fails (warning) while a "
    "failed_permanent event is missing from reverse_etl.tiktok_failure_reviews "
    "(`python -m reverse_etl --review-failures WHO` records a review).",
)
def no_unreviewed_permanent_failures(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        groups = unreviewed_failures(con)
    events = sum(g[2] for g in groups)
    return dg.AssetCheckResult(
        passed=events == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unreviewed_events": events,
            "by_reason": dg.MetadataValue.md(
                "\n".join(f"- {n} x code {code}: {message}" for code, message, n, _ in groups) or "none"
            ),
            "review_with": f"python -m reverse_etl --review-failures <you>  (table {LEDGER_SCHEMA}."
            "tiktok_failure_reviews)",
        },
    )


def _quarantine_check(source: str, table: str):
    @dg.asset_check(
        asset=RAW[table],
        name="quarantine_share_is_low",
        pool=WAREHOUSE_POOL,
        description="Lines quarantined in the last 24 hours are at most QUARANTINE_MAX_SHARE (1%) of the "
        "lines loaded: a malformed feed or a changed payload shape shows here first.",
    )
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        limit = _float_env("QUARANTINE_MAX_SHARE", 0.01)
        with warehouse.connect() as con:
            loaded, quarantined = con.execute(
                "select coalesce(sum(loaded_rows + duplicate_rows), 0), coalesce(sum(quarantined_rows), 0) "
                "from raw.loaded_files where source = ? and loaded_at > now() - interval '24 hours'",
                [source],
            ).fetchall()[0]
            reasons = con.execute(
                "select reason, count(*) from raw.quarantine where source = ? "
                "and quarantined_at > now() - interval '24 hours' group by 1 order by 2 desc limit 5",
                [source],
            ).fetchall()
        loaded, quarantined = int(loaded), int(quarantined)  # (PostgreSQL's sum of bigints is a numeric)
        share = quarantined / (loaded + quarantined) if loaded + quarantined else 0.0
        return dg.AssetCheckResult(
            passed=share <= limit,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "quarantined_24h": int(quarantined),
                "loaded_24h": int(loaded),
                "share": round(share, 5),
                "limit": limit,
                "top_reasons": dg.MetadataValue.md("\n".join(f"- {n} x {r}" for r, n in reasons) or "none"),
            },
        )

    return check


quarantine_checks = [
    _quarantine_check("stripe_events", "stripe_events"),
    _quarantine_check("tracking", "tracking_events"),
]

MATCH_HISTORY = """
create schema if not exists monitoring;
create table if not exists monitoring.match_rate_history (
    measured_at timestamp not null, purchases bigint not null, matched bigint not null, match_rate double precision
);
"""


@dg.asset_check(
    asset=PURCHASES_KEY,
    pool=WAREHOUSE_POOL,
    description="The share of the last 30 days' purchases joined to a marketing touch does not drop by "
    "more than MATCH_RATE_MAX_DROP (10 points) from the previous run: a broken tracker, a "
    "lost client_reference_id or a consent change shows here first.",
)
def match_rate_holds(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    max_drop = _float_env("MATCH_RATE_MAX_DROP", 0.10)
    with warehouse.connect() as con:
        purchases, matched = con.execute("""
            select count(*), count(first_touch_at) from marts.attributed_purchases
            where purchased_at > (select max(purchased_at) from marts.attributed_purchases) - interval '30 days'
        """).fetchall()[0]
        rate = matched / purchases if purchases else None
        con.execute(MATCH_HISTORY)
        previous = con.execute(
            "select match_rate from monitoring.match_rate_history "
            "where match_rate is not null order by measured_at desc limit 1"
        ).fetchall()
        con.execute("insert into monitoring.match_rate_history values (now(), ?, ?, ?)", [purchases, matched, rate])
    before = previous[0][0] if previous else None
    dropped = rate is not None and before is not None and before - rate > max_drop
    return dg.AssetCheckResult(
        passed=not dropped,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "match_rate": round(rate, 4) if rate is not None else "no purchases",
            "previous_match_rate": round(before, 4) if before is not None else "first measurement",
            "purchases_30d": purchases,
            "matched_30d": matched,
            "max_drop": max_drop,
        },
    )


@dg.asset_check(
    asset=PURCHASES_KEY,
    pool=WAREHOUSE_POOL,
    description="No settled payment is held back for want of its invoice link: since Stripe API "
    "2025-03-31.basil only the invoice_payment.paid event says which PaymentIntent paid an "
    "invoice. Fails while a PaymentIntent that looks like an invoice's payment has none "
    "(it is then neither a purchase nor sent to TikTok, rather than counted twice).",
)
def stripe_payments_linked(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        held = con.execute("""
            select count(*), coalesce(sum(amount_received), 0), min(paid_at), max(paid_at),
                   string_agg(payment_intent_id || ' -> ' || suspected_invoice_id, ', ' order by paid_at desc)
                       filter (where recency <= 5)
            from (select *, row_number() over (order by paid_at desc) as recency
                  from intermediate.int_standalone_payment_intents
                  where hold_reason = 'no_invoice_payment_link') as held
        """).fetchall()[0]
    count, amount, oldest, newest, examples = held
    metadata = {
        "held_payments": int(count),
        "held_amount_all_currencies": float(amount),
        "examples": examples or "none",
    }
    if not count:
        return dg.AssetCheckResult(passed=True, metadata=metadata)
    return dg.AssetCheckResult(
        passed=False,
        metadata=metadata
        | {
            "oldest": str(oldest),
            "newest": str(newest),
            "fix": dg.MetadataValue.md(
                "Enable the `invoice_payment.paid` event on the Stripe webhook endpoint (Dashboard: Developers -> "
                "Webhooks -> your endpoint -> Select events), or set STRIPE_API_KEY so the Events API pull takes "
                "every event type, then backfill the period with `python -m ingestion.stripe_pull backfill --start "
                f"{str(oldest)[:10]} --resources invoices` (invoices are listed with their payments). The held "
                "payments become part of their invoices' purchases when the links arrive."
            ),
        },
        description=f"{count} Stripe payment(s) look like invoice payments but no invoice_payment.paid event links "
        "them: enable invoice_payment.paid on the webhook endpoint",
    )


defs = dg.Definitions(
    asset_checks=[
        one_row_per_event_id,
        no_unreviewed_permanent_failures,
        *quarantine_checks,
        match_rate_holds,
        stripe_payments_linked,
    ]
)
