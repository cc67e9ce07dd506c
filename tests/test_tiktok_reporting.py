"""TikTok ad spend pulled over real HTTP from the fake Marketing API report, into a DuckDB file, with faults."""

from datetime import date, timedelta

import duckdb
import httpx
import pytest

from fakes.tiktok_reporting import FakeTikTokReporting
from ingestion.tiktok_reporting import (
    ReportingError,
    ReportingSettings,
    day_windows,
    pull_days,
)

TOKEN = "test-marketing-token"
ADV = "7301234567890123456"
START = date(2026, 10, 1)


def account(days: int = 3, ads: int = 3) -> dict:
    ad_map = {
        f"17900000000001{n:04d}": {
            "campaign_id": "1790000000000000101",
            "campaign_name": "tt_summer_ugc",
            "adgroup_id": "1790000000000001101",
            "adgroup_name": "broad",
            "ad_name": f"tt_ad_{n:02d}",
        }
        for n in range(ads)
    }
    daily = [
        {
            "day": (START + timedelta(days=d)).isoformat(),
            "ad_id": ad_id,
            "spend": 10.5 + d,
            "impressions": 1000,
            "clicks": 12,
            "complete_payment": 1,
            "complete_payment_value": 49.0,
        }
        for d in range(days)
        for ad_id in ad_map
    ]
    return {"advertisers": {ADV: {"currency": "USD", "ads": ad_map, "daily": daily}}}


@pytest.fixture
def fake():
    with FakeTikTokReporting(account()) as f:
        yield f


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "wh.duckdb"))
    yield c
    c.close()


def settings(fake, **kw) -> ReportingSettings:
    base = dict(
        access_token=TOKEN,
        advertiser_ids=(ADV,),
        api_base_url=fake.url,
        timeout_seconds=2,
        requests_per_second=1000,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
    )
    base.update(kw)
    return ReportingSettings(**base)


def days(n: int) -> list[date]:
    return [START + timedelta(days=d) for d in range(n)]


def spend_by_day(con) -> dict:
    return dict(
        con.execute(
            "select stat_day, sum(cast(json_extract_string(payload, '$.metrics.spend') as double)) "
            "from raw.tiktok_ad_stats group by 1"
        ).fetchall()
    )


def test_pull_pages_and_lands_every_row_as_sent(fake, con):
    result = pull_days(con, settings(fake, page_size=2), days(3))
    assert result.rows == 9 and result.requests == 5  # 9 rows, 2 a page
    assert spend_by_day(con) == {START: 31.5, START + timedelta(days=1): 34.5, START + timedelta(days=2): 37.5}
    payload = con.execute("select payload from raw.tiktok_ad_stats limit 1").fetchall()[0][0]
    assert '"stat_time_day":"2026-10-0' in payload and '"spend":"1' in payload  # metric values are strings


def test_repull_replaces_revised_days_and_never_doubles(fake, con):
    pull_days(con, settings(fake), days(3))
    fake.revise(ADV, START.isoformat(), "179000000000010000", spend=99.0, complete_payment=3)
    pull_days(con, settings(fake), days(1))
    assert con.execute("select count(*) from raw.tiktok_ad_stats").fetchall() == [(9,)]
    assert spend_by_day(con)[START] == 99.0 + 10.5 * 2


def test_rate_limit_and_service_errors_are_retried(fake, con):
    fake.inject(script=[{"code": 40100}, {"http": 500}, {"code": 50000}])
    result = pull_days(con, settings(fake), days(2))
    assert result.retries == 3 and result.rows == 6
    assert fake.codes[40100] == 1 and fake.codes[50000] == 1


@pytest.mark.parametrize(
    ("kw", "code", "words"),
    [
        ({"access_token": "wrong"}, 40105, "access token"),
        ({"advertiser_ids": ("123",)}, 40001, "no permission on advertiser 123"),
    ],
)
def test_refusals_stop_with_tiktoks_message(fake, con, kw, code, words):
    with pytest.raises(ReportingError) as e:
        pull_days(con, settings(fake, **kw), days(1))
    assert e.value.code == code and words in str(e.value) and e.value.request_id


def test_a_failed_window_leaves_earlier_figures_in_place(fake, con):
    pull_days(con, settings(fake), days(3))
    fake.inject(script=[{"code": 40002}])
    with pytest.raises(ReportingError):
        pull_days(con, settings(fake), days(3))
    assert con.execute("select count(*) from raw.tiktok_ad_stats").fetchall() == [(9,)]


def test_giving_up_after_max_attempts(fake, con):
    fake.inject(rate_limit_per_second=1)
    fake.inject(script=[{"code": 40100}] * 5)
    with pytest.raises(ReportingError, match="gave up after 3 attempts"):
        pull_days(con, settings(fake, max_attempts=3), days(1))


def test_windows_hold_at_most_thirty_consecutive_days():
    d = [START + timedelta(days=n) for n in range(65)] + [START + timedelta(days=100)]
    windows = day_windows(d)
    assert [(b - a).days + 1 for a, b in windows] == [30, 30, 5, 1]


def test_the_fake_refuses_what_tiktok_refuses(fake):
    base = {
        "advertiser_id": ADV,
        "report_type": "BASIC",
        "data_level": "AUCTION_AD",
        "dimensions": '["ad_id","stat_time_day"]',
        "metrics": '["spend"]',
        "start_date": "2026-10-01",
        "end_date": "2026-11-15",
    }
    path = "/open_api/v1.3/report/integrated/get/"
    with httpx.Client(base_url=fake.url) as http:
        assert http.get(path, params=base).json()["code"] == 40104
        headers = {"Access-Token": TOKEN}
        assert http.get(path, params=base, headers=headers).json()["code"] == 40002  # 46 days
        ok = http.get(path, params={**base, "end_date": "2026-10-02"}, headers=headers).json()
        assert ok["code"] == 0 and ok["data"]["page_info"] == {
            "page": 1,
            "page_size": 10,
            "total_number": 6,
            "total_page": 1,
        }
        bad = http.get(path, params={**base, "metrics": '["roas_magic"]'}, headers=headers).json()
        assert bad["code"] == 40002 and "roas_magic" in bad["message"]


def test_settings_read_advertiser_ids_from_the_environment():
    s = ReportingSettings.from_env(
        {"TIKTOK_MARKETING_ACCESS_TOKEN": "t", "TIKTOK_ADVERTISER_IDS": " 1, 2,1 ", "TIKTOK_REPORTING_REPULL_DAYS": "3"}
    )
    assert s.advertiser_ids == ("1", "2") and s.repull_days == 3 and s.configured
    assert not ReportingSettings.from_env({}).configured
    with pytest.raises(ValueError):
        ReportingSettings.from_env({"TIKTOK_ADVERTISER_IDS": "abc"})
