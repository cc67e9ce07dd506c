"""The TikTok delivery asset in Dagster: sends through the resource's settings, fails clearly on a bad token."""

from datetime import datetime

import dagster as dg
import duckdb
import pytest

from fakes.tiktok import FakeTikTok
from orchestration.defs.activation import tiktok_deliveries
from orchestration.resources import TikTokResource, WarehouseResource
from simulator.conversions import make_conversions


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as con:
        make_conversions(con, 30, datetime.now().replace(microsecond=0), consent_denied_every=10)
    return path


def test_the_asset_sends_and_reports_ledger_counts_as_metadata(warehouse):
    with FakeTikTok(access_tokens=["tok"], pixel_codes=["PX"]) as fake:
        result = dg.materialize(
            [tiktok_deliveries],
            resources={
                "warehouse": WarehouseResource(path=str(warehouse)),
                "tiktok": TikTokResource(access_token="tok", pixel_code="PX", api_base_url=fake.url),
            },
        )
        assert result.success
        assert fake.stats()["accepted_unique"] == 27
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["ledger_sent"].value == 27 and metadata["ledger_no_consent"].value == 3
    assert metadata["dry_run"].value is False


def test_a_token_without_permission_fails_the_asset_with_what_to_fix(warehouse):
    with FakeTikTok(access_tokens=["tok"], pixel_codes=["PX"]) as fake:
        result = dg.materialize(
            [tiktok_deliveries],
            raise_on_error=False,
            resources={
                "warehouse": WarehouseResource(path=str(warehouse)),
                "tiktok": TikTokResource(access_token="expired-token", pixel_code="PX", api_base_url=fake.url),
            },
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "TIKTOK_ACCESS_TOKEN" in failure.step_failure_data.user_failure_data.description
