"""A fake of the TikTok Marketing API's synchronous report, over real HTTP on 127.0.0.1.

``GET /open_api/v1.3/report/integrated/get/`` with an ``Access-Token`` header and the documented query parameters
(list parameters JSON-encoded): ``advertiser_id``, ``report_type=BASIC``, ``service_type=AUCTION``,
``data_level=AUCTION_AD``, ``dimensions`` (``ad_id`` and ``stat_time_day``), ``metrics``, ``start_date`` and
``end_date`` (inclusive, at most 30 days with ``stat_time_day``), ``page`` and ``page_size`` (1 to 1,000). Answers
are HTTP 200 with the envelope ``{"code", "message", "request_id", "data"}``; ``data`` holds ``list`` (rows of
``dimensions`` and ``metrics``, every metric value a string, days as ``"YYYY-MM-DD 00:00:00"``) and ``page_info``
(``page``, ``page_size``, ``total_number``, ``total_page``). Codes as documented: 40104 without a token, 40105 for
an unknown one, 40001 for an advertiser the token may not read, 40002 for a bad parameter, 40100 when throttled.
Rows exist for the days and ads with impressions, as TikTok returns them.

The account (advertisers, their currency, ads and daily figures) comes from the simulator
(``simulator/ad_account.py`` writes it beside the landing zone), so spend and TikTok's own attributed conversions
match the simulated clicks. ``revise`` changes a day's figures, as TikTok does for recent days.

Faults (``inject``): ``script``, one-shot faults for the next requests (``{"http": 500}``, ``{"code": 40100}``,
``{"code": 50000}``); ``rate_limit_per_second``; ``deny``: 40001 for everything.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
import uuid
from collections import Counter, deque
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fakes._http import BackgroundServer, JsonHandler

REPORT_PATH = "/open_api/v1.3/report/integrated/get/"
ATTRIBUTES = ("campaign_id", "campaign_name", "adgroup_id", "adgroup_name", "ad_name", "currency")
FIGURES = {
    "spend": "spend",
    "impressions": "impressions",
    "clicks": "clicks",
    "complete_payment": "complete_payment",
    "total_complete_payment_rate": "complete_payment_value",
}


class _Refused(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class FakeTikTokReporting(BackgroundServer):
    thread_name = "fake-tiktok-reporting"

    def __init__(self, account: dict, access_tokens=("test-marketing-token",), host: str = "127.0.0.1", port: int = 0):
        """``account``: ``{"advertisers": {id: {"currency", "ads": {ad_id: {campaign_id, campaign_name, adgroup_id,
        adgroup_name, ad_name}}, "daily": [{"day", "ad_id", "spend", "impressions", "clicks", "complete_payment",
        "complete_payment_value"}]}}}``."""
        self.access_tokens = set(access_tokens)
        self._lock = threading.Lock()
        self.advertisers: dict = {}
        for adv_id, adv in account.get("advertisers", {}).items():
            daily = {(d["day"], d["ad_id"]): dict(d) for d in adv.get("daily", [])}
            self.advertisers[str(adv_id)] = {"currency": adv["currency"], "ads": adv["ads"], "daily": daily}
        self.requests = 0
        self.codes: Counter = Counter()
        self.script: deque = deque()
        self.rate_limit_per_second = 0
        self.deny = False
        self._window: deque = deque()
        self._make_server(host, port, _Handler)

    @classmethod
    def from_file(cls, path: Path | str, **kwargs) -> FakeTikTokReporting:
        return cls(json.loads(Path(path).read_text()), **kwargs)

    def inject(self, script=None, rate_limit_per_second=None, deny=None) -> None:
        with self._lock:
            if script is not None:
                self.script.extend(script)
            if rate_limit_per_second is not None:
                self.rate_limit_per_second = rate_limit_per_second
            if deny is not None:
                self.deny = deny

    def revise(self, advertiser_id: str, day: str, ad_id: str, **figures) -> None:
        """TikTok's later figures for one ad and day (conversions credited late, spend corrected)."""
        with self._lock:
            self.advertisers[advertiser_id]["daily"].setdefault((day, ad_id), {"day": day, "ad_id": ad_id}).update(
                figures
            )

    # ---- the API -----------------------------------------------------------------------------------
    def handle(self, token: str | None, query: dict) -> tuple[int, dict]:
        with self._lock:
            self.requests += 1
            fault = self.script.popleft() if self.script else None
            throttled = False
            if self.rate_limit_per_second:
                now = time.monotonic()
                while self._window and self._window[0] < now - 1:
                    self._window.popleft()
                throttled = len(self._window) >= self.rate_limit_per_second
                self._window.append(now)
        if fault and "http" in fault:
            return int(fault["http"]), {"message": f"HTTP {fault['http']} injected"}
        if fault and "code" in fault:
            return 200, self._envelope(int(fault["code"]), "injected fault")
        if throttled:
            return 200, self._envelope(40100, "Too many requests. Please retry in some time.")
        try:
            data = self._report(token, query)
        except _Refused as e:
            return 200, self._envelope(e.code, str(e))
        return 200, self._envelope(0, "OK", data)

    def _report(self, token: str | None, query: dict) -> dict:
        if not token:
            raise _Refused(40104, "Access token is null, you should set it in http header with key Access-Token.")
        if token not in self.access_tokens:
            raise _Refused(40105, "Access token is incorrect or has been revoked.")
        q = {k: v[-1] for k, v in query.items()}
        advertiser_id = q.get("advertiser_id")
        if not advertiser_id:
            raise _Refused(40002, "advertiser_id: Missing data for required field.")
        if self.deny or advertiser_id not in self.advertisers:
            raise _Refused(40001, f"No permission to operate advertiser {advertiser_id}.")
        if q.get("report_type") != "BASIC":
            raise _Refused(40002, "report_type: this fake serves BASIC reports only.")
        if q.get("service_type", "AUCTION") != "AUCTION" or q.get("data_level") != "AUCTION_AD":
            raise _Refused(40002, "data_level: this fake serves AUCTION_AD of the AUCTION service only.")
        try:
            dimensions = json.loads(q.get("dimensions", ""))
            metrics = json.loads(q.get("metrics", "[]"))
        except ValueError:
            raise _Refused(40002, "dimensions and metrics are JSON lists of strings.") from None
        if sorted(dimensions) != ["ad_id", "stat_time_day"]:
            raise _Refused(40002, 'dimensions: this fake serves ["ad_id", "stat_time_day"].')
        unknown = [m for m in metrics if m not in ATTRIBUTES and m not in FIGURES]
        if unknown:
            raise _Refused(40002, f"metrics: invalid metric {unknown[0]}.")
        try:
            start, end = date.fromisoformat(q["start_date"]), date.fromisoformat(q["end_date"])
        except (KeyError, ValueError):
            raise _Refused(40002, "start_date and end_date are required, as YYYY-MM-DD.") from None
        if end < start:
            raise _Refused(40002, "end_date must not be earlier than start_date.")
        if (end - start).days >= 30:
            raise _Refused(40002, "The time span cannot exceed 30 days when stat_time_day is a dimension.")
        try:
            page, page_size = int(q.get("page", 1)), int(q.get("page_size", 10))
        except ValueError:
            raise _Refused(40002, "page and page_size are integers.") from None
        if page < 1 or not 1 <= page_size <= 1000:
            raise _Refused(40002, "page must be at least 1 and page_size between 1 and 1000.")
        with self._lock:
            adv = self.advertisers[advertiser_id]
            rows = []
            for n in range((end - start).days + 1):
                day = (start + timedelta(days=n)).isoformat()
                for ad_id in sorted(adv["ads"]):
                    figures = adv["daily"].get((day, ad_id))
                    if not figures or not figures.get("impressions"):
                        continue
                    ad = adv["ads"][ad_id]
                    values = {**ad, "currency": adv["currency"]}
                    out = {}
                    for m in metrics:
                        if m in ATTRIBUTES:
                            out[m] = str(values[m])
                        else:
                            v = figures.get(FIGURES[m], 0)
                            out[m] = f"{v:.2f}" if m in ("spend", "total_complete_payment_rate") else str(int(v))
                    rows.append({"dimensions": {"ad_id": ad_id, "stat_time_day": f"{day} 00:00:00"}, "metrics": out})
        total = len(rows)
        return {
            "list": rows[(page - 1) * page_size : page * page_size],
            "page_info": {
                "page": page,
                "page_size": page_size,
                "total_number": total,
                "total_page": math.ceil(total / page_size),
            },
        }

    def _envelope(self, code: int, message: str, data: dict | None = None) -> dict:
        with self._lock:
            self.codes[code] += 1
        return {"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": data or {}}


class _Handler(JsonHandler):
    owner: FakeTikTokReporting

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != REPORT_PATH:
            return self._send_json(404, {"message": "404 page not found"})
        status, body = self.owner.handle(self.headers.get("Access-Token"), parse_qs(parts.query))
        self._send_json(status, body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fakes.tiktok_reporting", description="Serve the fake report API.")
    ap.add_argument("account", help="the ad account file the simulator wrote (tiktok_ads/account.json)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="test-marketing-token")
    args = ap.parse_args(argv)
    return FakeTikTokReporting.from_file(
        args.account, access_tokens=[args.token], port=args.port
    ).serve_until_interrupted()


if __name__ == "__main__":
    raise SystemExit(main())
