"""Settings written once: every TikTok setting is one field of DeliverySettings naming its environment variable;
the environment, the Dagster resource's config and the documentation all follow from it."""

from pathlib import Path

import pytest

from ingestion.settings import settings_fields, value_of
from orchestration.resources import TikTokResource
from reverse_etl.deliver import DeliverySettings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings_fields(DeliverySettings)
# a value other than the default for each kind of setting, as text in the environment
SAMPLES = {bool: ("false", False), int: ("3", 3), float: ("2.5", 2.5), str: ("US-sample", "US-sample")}


def _sample(setting):
    base = setting.type if isinstance(setting.type, type) else next(t for t in setting.type.__args__ if t is not None)
    raw, value = SAMPLES[base]
    if setting.env == "TIKTOK_SEND_SCOPE":
        return "tiktok_attributed", "tiktok_attributed"
    if setting.env == "TIKTOK_DEFAULT_PHONE_REGION":
        return "GB", "GB"
    if base is bool and setting.default is False:
        return "true", True
    return raw, value


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_each_setting_travels_from_the_environment_through_the_resource_to_the_delivery(setting, monkeypatch):
    raw, value = _sample(setting)
    monkeypatch.setenv(setting.env, raw)
    if setting.env != "TIKTOK_PIXEL_CODE":
        monkeypatch.setenv("TIKTOK_PIXEL_CODE", "PX")
    assert value_of(DeliverySettings.from_env(), setting) == value
    resource = TikTokResource.from_env()
    if setting.env == "TIKTOK_ACCESS_TOKEN":
        assert resource.access_token.env_var_name == "TIKTOK_ACCESS_TOKEN", "the token stays an EnvVar"
    else:
        assert value_of(resource.settings(), setting) == value


def test_the_resource_has_one_field_per_setting_with_its_default():
    fields = TikTokResource.model_fields
    assert set(fields) == {s.env.removeprefix("TIKTOK_").lower() for s in SETTINGS}
    for s in SETTINGS:
        assert fields[s.env.removeprefix("TIKTOK_").lower()].default == s.default, s.env


def test_every_setting_is_documented():
    from ingestion.collector import CollectorSettings
    from ingestion.http_service import ConnectionLimits
    from ingestion.stripe_pull import PullSettings
    from ingestion.stripe_receiver import ReceiverSettings
    from ingestion.tiktok_reporting import ReportingSettings

    readme, example = (ROOT / "README.md").read_text(), (ROOT / ".env.example").read_text()
    every = SETTINGS + settings_fields(CollectorSettings) + settings_fields(ReceiverSettings)
    every += settings_fields(PullSettings) + settings_fields(ConnectionLimits) + settings_fields(ReportingSettings)
    assert [s.env for s in every if s.env not in readme or s.env not in example] == []
    assert "REPORT_PATH" in readme and "REPORT_PATH" in example


def test_dbt_reads_national_phone_numbers_in_the_region_the_payload_builder_uses():
    from orchestration.defs.dbt import dbt_vars

    assert dbt_vars(DeliverySettings.from_env({})) == {"default_phone_country_code": "1"}
    assert dbt_vars(DeliverySettings.from_env({"TIKTOK_DEFAULT_PHONE_REGION": "GB"})) == {
        "default_phone_country_code": "44"
    }
    with pytest.raises(ValueError, match="TIKTOK_DEFAULT_PHONE_REGION"):
        DeliverySettings.from_env({"TIKTOK_DEFAULT_PHONE_REGION": "Atlantis"})


def test_the_stripe_resource_is_derived_from_the_pull_settings_too(monkeypatch, tmp_path):
    from orchestration.resources import StripeResource

    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_x")
    monkeypatch.setenv("STRIPE_PULL_TYPES", "invoice_payment.paid, invoice.paid")
    monkeypatch.setenv("STRIPE_PULL_OVERLAP_SECONDS", "60")
    resource = StripeResource.from_env()
    assert resource.api_key.env_var_name == "STRIPE_API_KEY", "the key stays an EnvVar"
    assert resource.pull_types == ["invoice_payment.paid", "invoice.paid"]
    settings = StripeResource(api_key="rk_test_x", pull_types=["invoice_payment.paid"]).settings(tmp_path)
    assert (settings.types, settings.landing_dir, settings.overlap_seconds) == (
        ("invoice_payment.paid",),
        tmp_path,
        300,
    )
    assert StripeResource().settings(tmp_path) is None, "no key: no pull"
