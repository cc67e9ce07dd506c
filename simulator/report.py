"""The demo's report: what the pipeline found in the warehouse, scored against the world's ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from ingestion import config
from simulator.cli import default_truth_path
from simulator.evaluate import naive_baselines, score


def _table(con: duckdb.DuckDBPyConnection, title: str, sql: str) -> str:
    rel = con.sql(sql)
    cols, rows = rel.columns, rel.fetchall()
    cells = [
        [
            ("" if v is None else f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
            for v in r
        ]
        for r in rows
    ]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False))
    out = [f"\n{title}", line, "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=False)))
        for r in cells
    ]
    return "\n".join(out)


def _by_currency(dimension: str, where: str = "true") -> str:
    """Revenue per value of a dimension, one column per currency (amounts in different currencies are never added)."""
    return f"""
        pivot (select coalesce({dimension}, '(no touch tracked)') as "{dimension}", currency,
                      cast(net_amount as double) as net_amount, purchase_id
               from marts.attributed_purchases where {where})
        on currency using sum(net_amount)
        group by "{dimension}" order by "{dimension}"
    """


def build_report(warehouse: Path, truth_path: Path | None) -> str:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        parts = [
            _table(
                con,
                "Purchases and revenue (net of refunds), per currency",
                """
            select currency, count(*) as purchases, count(*) filter (where is_renewal) as renewals,
                   cast(sum(amount) as double) as revenue, cast(sum(refunded_amount) as double) as refunded,
                   cast(sum(net_amount) as double) as net_revenue
            from marts.attributed_purchases group by currency order by currency""",
            )
        ]
        parts.append(
            _table(con, "Net revenue by first-touch channel (renewals included)", _by_currency("first_touch_channel"))
        )
        parts.append(
            _table(
                con,
                "Net revenue by TikTok campaign (first touch)",
                _by_currency("first_touch_campaign", "attributed_to_tiktok"),
            )
        )
        spend = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'tiktok_campaign_performance'"
        ).fetchall()[0][0]
        if spend:
            parts.append(
                _table(
                    con,
                    "TikTok spend and ROAS per campaign (customers by the month of their first touch, revenue to date)",
                    """
            select campaign_name as campaign, any_value(reporting_currency) as currency,
                   round(sum(spend), 2) as spend, sum(customers) as customers,
                   round(sum(lifetime_revenue), 2) as revenue,
                   round(sum(lifetime_revenue) / nullif(sum(spend), 0), 2) as roas,
                   round(sum(spend) / nullif(sum(customers), 0), 2) as cac,
                   sum(purchases) as our_purchases, sum(tiktok_reported_conversions) as tiktok_reported,
                   round(100.0 * sum(tiktok_reported_conversions) / nullif(sum(purchases), 0), 1)
                       as tiktok_sees_pct
            from marts.tiktok_campaign_performance
            group by campaign_name having sum(spend) > 0 order by spend desc""",
                )
            )
        parts.append(
            _table(
                con,
                "TikTok conversions",
                """
            select coalesce(l.status, case when c.eligible then 'not recorded yet' else 'not sent: '
                   || c.ineligible_reason end) as status, count(*) as events
            from marts.tiktok_conversions c left join reverse_etl.tiktok_deliveries l using (event_id)
            group by 1 order by 2 desc""",
            )
        )
        parts.append(
            "  (expired: older than TIKTOK_MAX_EVENT_AGE_DAYS when first due. A first run over months of history "
            "sends only the last days;\n   later runs send each purchase as it arrives. no_consent: the "
            "customer denied advertising consent.)"
        )
        if truth_path and Path(truth_path).exists():
            baselines = naive_baselines(con, truth_path)
            s = score(con, truth_path)
            parts.append(
                "\nAgainst the simulator's ground truth\n"
                f"  purchases found: {s.found_purchases:,} of {s.truth_purchases:,}; counted twice: "
                f"{s.extra_purchases:,}; with a wrong amount or refund: {s.wrong_amounts:,}\n"
                f"  TikTok-brought revenue attributed to the right TikTok campaign: "
                f"{100 * s.tiktok_right_campaign_share:.1f}% of USD {s.tiktok_linkable_revenue:,.2f}, the revenue "
                f"where the world holds a link between click and purchase\n"
                f"  (TikTok-brought revenue with no observable link, which no tool can attribute: "
                f"USD {s.tiktok_unlinkable_revenue:,.2f} at the simulator's exchange rates)\n"
                f"  stitched customers holding purchases of more than one person: {s.false_merges}\n"
                + "".join(
                    f"  naive baseline, {name}: {100 * share:.1f}% on the right campaign\n"
                    for name, share in baselines.items()
                )
            )
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulator.report", description=__doc__)
    ap.add_argument("--warehouse", default=str(config.warehouse_path()))
    ap.add_argument("--truth-path", default=None)
    args = ap.parse_args(argv)
    truth = Path(args.truth_path) if args.truth_path else default_truth_path(config.landing_dir())
    print(build_report(Path(args.warehouse), truth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
