"""Score the warehouse's attribution against the simulator's ground truth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

# Scoring weights only (the warehouse never converts currencies): the world's prices, in US dollars.
FX_TO_USD = {"USD": 1.0, "EUR": 1.08, "JPY": 0.0066, "KWD": 3.25}
# minor units per major unit of the world's currencies (the truth keeps Stripe's integers)
EXPONENT = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


@dataclass
class Score:
    truth_purchases: int
    found_purchases: int
    # purchases the world does not hold (the same money counted a second time, under another id)
    extra_purchases: int
    # found purchases whose amount or refunded amount differs from the world's
    wrong_amounts: int
    # revenue in USD at FX_TO_USD; "linkable": truly brought by TikTok where the world holds a link
    tiktok_linkable_revenue: float
    tiktok_right_campaign_revenue: float
    tiktok_unlinkable_revenue: float
    false_merges: int  # stitched customers holding purchases of more than one person
    false_merge_purchases: int

    @property
    def tiktok_right_campaign_share(self) -> float:
        return (
            self.tiktok_right_campaign_revenue / self.tiktok_linkable_revenue if self.tiktok_linkable_revenue else 1.0
        )


def score(con: duckdb.DuckDBPyConnection, truth_path: Path) -> Score:
    """Compare ``marts.attributed_purchases`` with the ground-truth file."""
    rows = [json.loads(line) for line in Path(truth_path).read_text().splitlines() if line.strip()]
    con.execute(
        "create or replace temp table _truth (purchase_id varchar, person_id varchar, channel varchar, "
        "campaign varchar, linkable boolean, usd_rate double, amount double, refunded double)"
    )
    con.executemany(
        "insert into _truth values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r["purchase_id"],
                f"{r['seed']}:{r['person_id']}",
                r["first_touch"]["channel"],
                r["first_touch"]["campaign"],
                r["link"] is not None,
                FX_TO_USD[r["currency"]],
                r["amount_minor"] / 10 ** EXPONENT[r["currency"]],
                r.get("refunded_minor", 0) / 10 ** EXPONENT[r["currency"]],
            )
            for r in rows
        ],
    )
    found, tt_linkable, tt_right, tt_unlinkable = con.execute("""
        select count(p.purchase_id),
               coalesce(sum(p.amount * t.usd_rate) filter (where t.channel = 'tiktok' and t.linkable), 0),
               coalesce(sum(p.amount * t.usd_rate) filter (where t.channel = 'tiktok' and t.linkable
                                              and p.first_touch_channel = 'TikTok Ads'
                                              and p.first_touch_campaign = t.campaign), 0),
               coalesce(sum(p.amount * t.usd_rate) filter (where t.channel = 'tiktok' and not t.linkable), 0)
        from _truth t left join marts.attributed_purchases p using (purchase_id)
    """).fetchall()[0]
    extra, wrong = con.execute("""
        select count(*) filter (where t.purchase_id is null),
               count(*) filter (where t.purchase_id is not null and (abs(cast(p.amount as double) - t.amount) > 0.0005
                                or abs(cast(p.refunded_amount as double) - t.refunded) > 0.0005))
        from marts.attributed_purchases p left join _truth t using (purchase_id)
    """).fetchall()[0]
    merges = con.execute("""
        select count(*), coalesce(sum(n), 0) from (
            select p.customer_id, count(*) as n from marts.attributed_purchases p join _truth t using (purchase_id)
            group by p.customer_id having count(distinct t.person_id) > 1)
    """).fetchall()[0]
    return Score(
        truth_purchases=len(rows),
        found_purchases=found,
        extra_purchases=extra,
        wrong_amounts=wrong,
        tiktok_linkable_revenue=float(tt_linkable),
        tiktok_right_campaign_revenue=float(tt_right),
        tiktok_unlinkable_revenue=float(tt_unlinkable),
        false_merges=merges[0],
        false_merge_purchases=merges[1],
    )


def naive_baselines(con: duckdb.DuckDBPyConnection, truth_path: Path) -> dict[str, float]:
    """Shares of the linkable TikTok-brought revenue that two naive methods put on the right campaign, from the
    same warehouse: the browser that carried the purchase's client_reference_id only (click id on the same
    browser), and browsers that identified with exactly the purchase's email only (no phones, no transitivity,
    no guards). Call after ``score`` (it reuses its _truth table)."""
    score(con, truth_path)
    baselines = {
        "click id on the same browser only": """
            select p.purchase_id, t.campaign, t.channel, row_number() over (
                partition by p.purchase_id order by t.touched_at, t.touch_id) as n
            from intermediate.int_purchases p
            join intermediate.int_touches t
              on t.anonymous_id = p.client_reference_id and t.touched_at <= p.purchased_at""",
        "email only": """
            select p.purchase_id, t.campaign, t.channel, row_number() over (
                partition by p.purchase_id order by t.touched_at, t.touch_id) as n
            from intermediate.int_purchases p
            join (select distinct anonymous_id, email_normalised from staging.stg_tracking__events
                  where email_normalised is not null) e on e.email_normalised = p.email_normalised
            join intermediate.int_touches t
              on t.anonymous_id = e.anonymous_id and t.touched_at <= p.purchased_at""",
    }
    out = {}
    for name, sql in baselines.items():
        right, linkable = con.execute(f"""
            with firsts as (select * from ({sql}) where n = 1)
            select coalesce(sum(p.amount * tr.usd_rate) filter (where f.channel = 'TikTok Ads'
                                                             and f.campaign = tr.campaign), 0),
                   coalesce(sum(p.amount * tr.usd_rate), 0)
            from _truth tr
            join marts.attributed_purchases p using (purchase_id)
            left join firsts f using (purchase_id)
            where tr.channel = 'tiktok' and tr.linkable
        """).fetchall()[0]
        out[name] = float(right) / float(linkable) if linkable else 1.0
    return out
