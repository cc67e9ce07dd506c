"""The TikTok delivery asset in Dagster: sends through the resource's settings, fails clearly on a bad token."""

import time
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
        result = _materialize(
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
        result = _materialize(
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


def test_events_that_failed_retryably_are_sent_again_when_due_without_new_data(warehouse):
    """TikTok answers 500 for a while: the run leaves the events failed_retryable. No new data arrives, yet the
    retry sensor starts the delivery again once they are due, and they are sent; then it asks for nothing."""
    from orchestration.defs.activation import tiktok_retry_job, tiktok_retry_sensor

    with FakeTikTok(access_tokens=["tok"], pixel_codes=["PX"]) as fake:
        resources = {
            "warehouse": WarehouseResource(path=str(warehouse)),
            "tiktok": TikTokResource(
                access_token="tok",
                pixel_code="PX",
                api_base_url=fake.url,
                max_attempts_per_run=2,
                retry_first_wait_seconds=1.0,
            ),
        }
        fake.inject(script=[{"http": 500}] * 200)
        with dg.instance_for_test() as instance:
            first = dg.materialize([tiktok_deliveries], resources=resources, instance=instance)
            assert first.success
            with duckdb.connect(str(warehouse), read_only=True) as con:
                assert (
                    con.execute(
                        "select count(*) from reverse_etl.tiktok_deliveries where status = 'failed_retryable'"
                    ).fetchall()[0][0]
                    == 27
                )

            def tick():
                with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
                    return tiktok_retry_sensor(ctx)

            assert not tick().run_requests, "not due yet: a second after the run that failed them"
            fake.script.clear()  # TikTok is back
            time.sleep(1.2)
            due = tick()
            assert len(due.run_requests) == 1 and due.run_requests[0].tags["tiktok/due"] == "27"
            job = dg.Definitions(assets=[tiktok_deliveries], jobs=[tiktok_retry_job], resources=resources)
            retried = job.resolve_job_def("tiktok_retry").execute_in_process(
                instance=instance, tags=due.run_requests[0].tags
            )
            assert retried.success
            assert fake.stats()["accepted_unique"] == 27
            assert not tick().run_requests, "nothing left to retry"


def _materialize(*args, **kwargs):
    """dg.materialize in an instance of its own: an instance another test entered and left in another context
    stays the current one of Dagster's definitions state (a context variable), with its files already deleted."""
    with dg.instance_for_test() as instance:
        return dg.materialize(*args, instance=instance, **kwargs)
