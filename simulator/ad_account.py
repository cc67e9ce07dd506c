"""The simulated world's TikTok ad account: campaigns, ad groups and ads with TikTok's numeric ids, and what TikTok's
own reporting says about them day by day (fakes/tiktok_reporting.py serves it).

TikTok's figures follow the world: an ad's clicks are the simulated clicks on it (plus the clicks whose page never
loaded the tracker), spend is those clicks at the campaign's cost per click, and TikTok's own attributed Complete
Payments are the purchases its pixel could see: on the device that clicked, within its 7-day click window, by a
person who did not refuse advertising cookies, and not blocked. Renewals and purchases on another device are
invisible to it: that gap is what the marts measure.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date, datetime, timedelta

ADVERTISER_ID = "7301234567890123456"
ADVERTISER_CURRENCY = "USD"
# campaign name -> (campaign id, ad group name, ad group id, {ad name: ad id}, cost per click in USD: a simulated
# visitor stands for the many real clicks of which only a few convert, so the figure is per tracked visit)
CAMPAIGNS = {
    "tt_summer_ugc": (
        "1790000000000000101",
        "tt_summer_ugc | broad 18-34",
        "1790000000000001101",
        {
            "tt_ad_ugc_01": "1790000000000011101",
            "tt_ad_ugc_02": "1790000000000011102",
            "tt_ad_ugc_03": "1790000000000011103",
        },
        6.2,
    ),
    "tt_bf_sale": (
        "1790000000000000102",
        "tt_bf_sale | retargeting",
        "1790000000000001102",
        {"tt_ad_bf_01": "1790000000000011201", "tt_ad_bf_02": "1790000000000011202"},
        8.4,
    ),
    "tt_spark_creators": (
        "1790000000000000103",
        "tt_spark_creators | interests",
        "1790000000000001103",
        {"tt_ad_spark_01": "1790000000000011301", "tt_ad_spark_02": "1790000000000011302"},
        4.1,
    ),
}
TIKTOK_CAMPAIGNS = {name: sorted(c[3]) for name, c in CAMPAIGNS.items()}
# the landing-page URL template the tracking guide recommends adds these (TikTok's macros __CAMPAIGN_ID__, __AID__,
# __CID__); the world's ads adopt it part way through, so older touches carry names only
ID_PARAMS = ("tt_campaign_id", "tt_adgroup_id", "tt_ad_id")
MACROS_ADOPTED_AFTER_DAYS = 60
CLICK_WINDOW = timedelta(days=7)
PIXEL_SEEN_SHARE = 0.85  # ad blockers and lost cookies hide the rest from the pixel
UNTRACKED_CLICK_SHARE = 0.12  # clicks TikTok counts whose page never loaded the tracker
IMPRESSIONS_PER_CLICK = 85
# USD per unit, the rates the pixel's values are converted with (the warehouse's seed fx_rates has the same)
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "JPY": 0.0067, "KWD": 3.25}
MINOR_EXPONENT = {"JPY": 0, "KWD": 3}


def ad_ids(campaign: str, ad: str) -> dict[str, str]:
    campaign_id, _, adgroup_id, ads, _ = CAMPAIGNS[campaign]
    return {"tt_campaign_id": campaign_id, "tt_adgroup_id": adgroup_id, "tt_ad_id": ads[ad]}


def _unit(*parts) -> float:
    """A number in [0, 1) fixed by its parts: the account's noise, without drawing from the world's generator."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16) / 16**12


class AdAccount:
    def __init__(self, seed: int):
        self.seed = seed
        self.clicks: dict[tuple[str, str], int] = defaultdict(int)  # (day, ad name) -> tracked clicks
        self.conversions: dict[tuple[str, str], int] = defaultdict(int)
        self.value_usd: dict[tuple[str, str], float] = defaultdict(float)

    def click(self, at: datetime, ad: str) -> None:
        self.clicks[(at.date().isoformat(), ad)] += 1

    def purchase(self, person_id: str, consent: bool, touches, device, at: datetime, amount_minor: int, currency: str):
        """What the pixel sees of a first purchase: credited to the ad of the buying device's last TikTok click
        within the click window, on the day of the purchase."""
        if not consent or _unit(self.seed, "pixel", person_id) >= PIXEL_SEEN_SHARE:
            return
        clicks = [
            t
            for t in touches
            if t.channel == "tiktok" and t.device is device and at - CLICK_WINDOW <= t.at <= at and t.ad
        ]
        if not clicks:
            return
        key = (at.date().isoformat(), max(clicks, key=lambda t: t.at).ad)
        self.conversions[key] += 1
        currency = currency.upper()
        self.value_usd[key] += amount_minor / 10 ** MINOR_EXPONENT.get(currency, 2) * USD_PER_UNIT[currency]

    def to_json(self, start: date, end: date) -> dict:
        ads, by_name = {}, {}
        for campaign, (campaign_id, adgroup_name, adgroup_id, named_ads, _) in CAMPAIGNS.items():
            for ad_name, ad_id in named_ads.items():
                ads[ad_id] = {
                    "campaign_id": campaign_id,
                    "campaign_name": campaign,
                    "adgroup_id": adgroup_id,
                    "adgroup_name": adgroup_name,
                    "ad_name": ad_name,
                }
                by_name[ad_name] = (ad_id, CAMPAIGNS[campaign][4])
        daily = []
        for day, ad_name in sorted(set(self.clicks) | set(self.conversions)):
            if not start.isoformat() <= day <= end.isoformat() or ad_name not in by_name:
                continue
            ad_id, cpc = by_name[ad_name]
            tracked = self.clicks.get((day, ad_name), 0)
            clicks = tracked + round(tracked * UNTRACKED_CLICK_SHARE * 2 * _unit(self.seed, "clicks", day, ad_id))
            spend = clicks * cpc * (0.8 + 0.4 * _unit(self.seed, "cpc", day, ad_id))
            impressions = max(1, clicks) * IMPRESSIONS_PER_CLICK * (0.7 + 0.6 * _unit(self.seed, "imp", day, ad_id))
            daily.append(
                {
                    "day": day,
                    "ad_id": ad_id,
                    "spend": round(spend, 2),
                    "impressions": round(impressions),
                    "clicks": clicks,
                    "complete_payment": self.conversions.get((day, ad_name), 0),
                    "complete_payment_value": round(self.value_usd.get((day, ad_name), 0.0), 2),
                }
            )
        return {"advertisers": {ADVERTISER_ID: {"currency": ADVERTISER_CURRENCY, "ads": ads, "daily": daily}}}
