"""Score the warehouse's attribution against the simulator's ground truth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb


# Scoring weights only (the warehouse never converts currencies): the world's prices, in US dollars.
FX_TO_USD = {"USD": 1.0, "EUR": 1.08, "JPY": 0.0066, "KWD": 3.25}


@dataclass
class Score:
    truth_purchases: int
    found_purchases: int
    # revenue in USD at FX_TO_USD; "linkable": truly brought by TikTok where the world holds a link
    tiktok_linkable_revenue: float
    tiktok_right_campaign_revenue: float
    tiktok_unlinkable_revenue: float
    false_merges: int                   # stitched customers holding purchases of more than one person
    false_merge_purchases: int

    @property
    def tiktok_right_campaign_share(self) -> float:
        return self.tiktok_right_campaign_revenue / self.tiktok_linkable_revenue if self.tiktok_linkable_revenue else 1.0


def score(con: duckdb.DuckDBPyConnection, truth_path: Path) -> Score:
    """Compare ``marts.attributed_purchases`` with the ground-truth file."""
    rows = [json.loads(line) for line in Path(truth_path).read_text().splitlines() if line.strip()]
    con.execute("create or replace temp table _truth (purchase_id varchar, person_id varchar, channel varchar, "
                "campaign varchar, linkable boolean, usd_rate double)")
    con.executemany("insert into _truth values (?, ?, ?, ?, ?, ?)", [
        (r["purchase_id"], f'{r["seed"]}:{r["person_id"]}', r["first_touch"]["channel"],
         r["first_touch"]["campaign"], r["link"] is not None, FX_TO_USD[r["currency"]]) for r in rows])
    found, tt_linkable, tt_right, tt_unlinkable = con.execute("""
        select count(p.purchase_id),
               coalesce(sum(p.amount * t.usd_rate) filter (where t.channel = 'tiktok' and t.linkable), 0),
               coalesce(sum(p.amount * t.usd_rate) filter (where t.channel = 'tiktok' and t.linkable
                                              and p.first_touch_channel = 'TikTok Ads'
                                              and p.first_touch_campaign = t.campaign), 0),
               coalesce(sum(p.amount * t.usd_rate) filter (where t.channel = 'tiktok' and not t.linkable), 0)
        from _truth t left join marts.attributed_purchases p using (purchase_id)
    """).fetchall()[0]
    merges = con.execute("""
        select count(*), coalesce(sum(n), 0) from (
            select p.customer_id, count(*) as n from marts.attributed_purchases p join _truth t using (purchase_id)
            group by p.customer_id having count(distinct t.person_id) > 1)
    """).fetchall()[0]
    return Score(truth_purchases=len(rows), found_purchases=found, tiktok_linkable_revenue=float(tt_linkable),
                 tiktok_right_campaign_revenue=float(tt_right), tiktok_unlinkable_revenue=float(tt_unlinkable),
                 false_merges=merges[0], false_merge_purchases=merges[1])
