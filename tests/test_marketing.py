"""What marketers came for, as they get it: TikTok's spend pulled through Dagster from the fake report API over a
simulated ad account, the pipeline's ROAS and CAC marts over it, and the HTML report opened in Chromium."""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fakes.tiktok_reporting import FakeTikTokReporting
from orchestration.definitions import build_defs
from orchestration.resources import TikTokAdsResource
from orchestration.run import run_pipeline, run_tiktok_spend
from reporting.marketing_report import write_report
from simulator.ad_account import ADVERTISER_ID, CAMPAIGNS, MACROS_ADOPTED_AFTER_DAYS
from tests.conftest import Workspace
from tests.test_tracker_browser import CHROMIUM, FLAGS, _browser_or_skip

TOKEN = "test-marketing-token"


def _days(account: dict) -> tuple[str, str]:
    days = sorted(d["day"] for d in account["advertisers"][ADVERTISER_ID]["daily"])
    return days[0], days[-1]


class Marketing:
    def __init__(self, root: Path):
        self.ws = Workspace(root)
        self.info = self.ws.add_world(600, 3)
        self.account = json.loads(Path(self.info["ad_account_path"]).read_text())
        self.fake = FakeTikTokReporting(self.account, access_tokens=[TOKEN]).start()
        self.instance_cm = dg.instance_for_test()
        self.instance = self.instance_cm.__enter__()

    def defs(self, configured: bool = True) -> dg.Definitions:
        resources = self.ws.resources()
        if configured:
            resources["tiktok_ads"] = TikTokAdsResource(
                marketing_access_token=TOKEN,
                advertiser_ids=[ADVERTISER_ID],
                marketing_api_base_url=self.fake.url,
                reporting_requests_per_second=100.0,
            )
        return build_defs(resources)

    def pull(self, first: str, last: str, configured: bool = True) -> dg.ExecuteInProcessResult:
        result = run_tiktok_spend(first, last, self.instance, "WARNING", self.defs(configured))
        assert result.success
        return result

    def run(self) -> dg.ExecuteInProcessResult:
        result = run_pipeline(self.instance, "WARNING", self.defs())
        assert result.success
        return result

    def close(self) -> None:
        self.fake.stop()
        self.instance_cm.__exit__(None, None, None)


@pytest.fixture(scope="module")
def marketing(tmp_path_factory):
    m = Marketing(tmp_path_factory.mktemp("marketing"))
    m.pull(*_days(m.account))
    m.run()
    yield m
    m.close()


def _account_total(account: dict, figure: str) -> float:
    return sum(d[figure] for d in account["advertisers"][ADVERTISER_ID]["daily"])


def test_spend_is_pulled_through_dagster_and_every_cent_reaches_the_marts(marketing):
    ws, account = marketing.ws, marketing.account
    spend = ws.scalar("select sum(spend) from marts.tiktok_ad_performance")
    assert spend == pytest.approx(_account_total(account, "spend"), abs=0.01)  # the account is in USD
    assert ws.scalar("select sum(tiktok_reported_conversions) from marts.tiktok_ad_performance") == _account_total(
        account, "complete_payment"
    )
    # the partitions the run covered are materialized, one event per day
    first, last = _days(account)
    materialized = marketing.instance.get_materialized_partitions(dg.AssetKey(["raw", "tiktok_ad_stats"]))
    n_days = (date.fromisoformat(last) - date.fromisoformat(first)).days + 1
    assert len(materialized) == n_days and first in materialized and last in materialized
    assert set(ws.scalar("select list(distinct campaign_name) from marts.tiktok_campaign_performance")) >= set(
        CAMPAIGNS
    )


def test_every_tiktok_customer_is_counted_once_on_an_ad_by_id_or_by_name(marketing):
    ws = marketing.ws
    customers = ws.scalar(
        "select count(distinct customer_id) from marts.attributed_purchases where first_touch_channel = 'TikTok Ads'"
    )
    assert customers > 20
    assert ws.scalar("select sum(customers) from marts.tiktok_ad_performance") == customers
    by_name = ws.scalar("select sum(customers_matched_by_name) from marts.tiktok_ad_performance")
    unmatched = ws.scalar("select coalesce(sum(customers), 0) from marts.tiktok_ad_performance where ad_id is null")
    # the world's ads carry TikTok's id macros after its first 60 days: earlier touches join by name
    assert 0 < by_name < customers and unmatched == 0
    adoption = ws.scalar("select min(first_touch_at) from marts.attributed_purchases") + timedelta(
        days=MACROS_ADOPTED_AFTER_DAYS + 1
    )
    late_by_name = ws.scalar(
        "select count(*) from marts.attributed_purchases where first_touch_channel = 'TikTok Ads' "
        "and first_touch_tiktok_ad_id is null and first_touch_at > ?",
        [adoption],
    )
    assert late_by_name == 0
    # ROAS and CAC are the sums' ratios
    roas, revenue, spend, cac, n = ws.query(
        "select sum(lifetime_revenue) / sum(spend), sum(lifetime_revenue), sum(spend), sum(spend) / sum(customers), "
        "sum(customers) from marts.tiktok_campaign_performance where campaign_name = 'tt_bf_sale'"
    )[0]
    assert roas == pytest.approx(revenue / spend) and cac == pytest.approx(spend / n)
    # TikTok's own report sees a part of what its ads brought, never more
    seen = ws.scalar(
        "select sum(tiktok_reported_conversions) / sum(first_purchases) from marts.tiktok_campaign_performance"
    )
    assert 0.05 < seen < 0.9


def test_a_day_tiktok_revises_replaces_its_figures_on_the_next_run(marketing):
    ws, account = marketing.ws, marketing.account
    row = max(account["advertisers"][ADVERTISER_ID]["daily"], key=lambda d: d["spend"])
    before = ws.scalar("select sum(spend) from marts.tiktok_ad_performance")
    marketing.fake.revise(ADVERTISER_ID, row["day"], row["ad_id"], spend=row["spend"] + 100.0, complete_payment=9)
    marketing.pull(row["day"], row["day"])
    marketing.run()
    assert ws.scalar("select sum(spend) from marts.tiktok_ad_performance") == pytest.approx(before + 100.0, abs=0.01)
    assert (
        ws.scalar(
            "select count(*) from raw.tiktok_ad_stats where stat_day = ? and ad_id = ?", [row["day"], row["ad_id"]]
        )
        == 1
    )
    marketing.fake.revise(
        ADVERTISER_ID, row["day"], row["ad_id"], spend=row["spend"], complete_payment=row["complete_payment"]
    )
    marketing.pull(row["day"], row["day"])
    marketing.run()


def test_without_credentials_the_spend_pull_is_skipped_with_a_log_line(marketing):
    result = marketing.pull("2026-06-01", "2026-06-03", configured=False)
    assert result.get_asset_materialization_events() == []
    logs = [e.user_message for e in marketing.instance.all_logs(result.run_id)]
    assert any("TIKTOK_MARKETING_ACCESS_TOKEN or TIKTOK_ADVERTISER_IDS is not set" in m for m in logs)


def test_the_schedule_asks_for_today_and_the_days_tiktok_still_revises(marketing):
    defs = marketing.defs()
    schedule = defs.get_schedule_def("tiktok_ad_spend_schedule")
    # a schedule context opens an instance of its own for the resources; entered with `with`, it is closed again
    # (left open, it stays Dagster's current definitions-state storage for every later test of the process)
    with dg.build_schedule_context(
        instance=marketing.instance,
        scheduled_execution_time=datetime(2026, 11, 17, 9, 17, tzinfo=UTC),
        resources={"tiktok_ads": defs.resources["tiktok_ads"]},
    ) as context:
        request = schedule(context)
    assert request.partition_key_range == dg.PartitionKeyRange("2026-11-11", "2026-11-17")
    with dg.build_schedule_context(
        instance=marketing.instance,
        scheduled_execution_time=datetime(2026, 11, 17, 9, 17, tzinfo=UTC),
        resources={"tiktok_ads": TikTokAdsResource()},
    ) as unconfigured:
        assert isinstance(schedule(unconfigured), dg.SkipReason)


def test_the_report_renders_in_chromium_with_data_in_every_chart_and_no_errors(marketing):
    sync_playwright = _browser_or_skip()
    report = marketing.ws.root / "marketing_report.html"
    assert report.exists(), "the pipeline's report asset wrote no report"
    materialization = marketing.instance.get_latest_materialization_event(dg.AssetKey(["reports", "marketing_report"]))
    assert materialization.asset_materialization.metadata["path"].value == str(report)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            problems, requests = [], []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            charts = page.eval_on_selector_all(
                "svg.chart",
                "els => els.map(e => ({label: e.getAttribute('aria-label'), "
                "marks: [...e.querySelectorAll('.mark')].filter(m => parseFloat(m.dataset.value) > 0 "
                "&& m.getBBox().width > 0 && m.getBBox().height > 0).length}))",
            )
            headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
            text = page.inner_text("main")
        finally:
            browser.close()
    assert problems == []
    assert requests == [report.as_uri()], "the report loaded something besides itself"
    labels = {c["label"] for c in charts}
    assert {
        "Revenue by first-touch channel and month",
        "ROAS per TikTok campaign",
        "CAC per TikTok campaign",
        "Attributed purchases: ours and TikTok's",
        "Match-key coverage",
        "Delivery outcomes per day",
    } <= labels
    assert all(c["marks"] > 0 for c in charts), charts
    assert len(headings) == 5 and "No TikTok spend pulled" not in text
    for campaign in CAMPAIGNS:
        assert campaign in text


def test_names_from_urls_are_text_in_the_report_never_markup(tmp_path):
    """utm_campaign is whatever a link said: a touch joined to no ad shows it, escaped."""
    sync_playwright = _browser_or_skip()
    copy = tmp_path / "analytics.duckdb"
    hostile = "<img src=x onerror=\"document.title='owned'\"><script>document.title='owned'</script>"
    with duckdb.connect(str(copy)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.report_revenue_by_channel as select date '2026-06-01' as acquisition_month, "
            "? as channel, 'USD' as reporting_currency, 1 as customers, 1 as purchases, 0 as renewals, "
            "10.0 as net_revenue, 0 as purchases_without_rate",
            [hostile],
        )
        con.execute(
            "create table marts.tiktok_campaign_performance as select ? as campaign_name, 'USD' as reporting_currency, "
            "date '2026-06-01' as acquisition_month, 5.0 as spend, 1 as customers, 10.0 as first_purchase_revenue, "
            "10.0 as lifetime_revenue, 0 as tiktok_reported_conversions, 1 as purchases, 1 as first_purchases, "
            "1 as customers_matched_by_name",
            [hostile],
        )
    out = write_report(copy, tmp_path / "report.html")
    assert out.sections_without_data == ["match-keys", "deliveries"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(out.path.as_uri())
            title, text = page.title(), page.inner_text("main")
            images = page.eval_on_selector_all("img, script", "els => els.length")
        finally:
            browser.close()
    assert title == "Marketing report" and images == 0 and hostile in text
