"""The production and Kubernetes configuration, checked against Dagster's own config schema."""

from pathlib import Path

import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PG_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_DB": "dagster",
}


def _valid_instance(tmp_path, source: Path) -> dict:
    home = tmp_path / source.stem
    home.mkdir()
    (home / "dagster.yaml").write_text(source.read_text())
    config, _ = dagster_instance_config(str(home))  # raises on anything the schema refuses
    return config


def _check(config_type, value) -> None:
    result = process_config(resolve_to_config_type(config_type), value)  # as the instance itself does
    assert result.success, [e.message for e in result.errors]


def test_the_production_instance_is_postgres_from_the_environment_and_valid(tmp_path, monkeypatch):
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    config = _valid_instance(tmp_path, DEPLOY / "dagster.yaml")
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["hostname"] == {"env": "DAGSTER_PG_HOST"} and db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_the_kubernetes_instance_and_run_launcher_match_dagsters_schema_and_the_helm_values(tmp_path, monkeypatch):
    from dagster_k8s import K8sRunLauncher

    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    config = _valid_instance(tmp_path, DEPLOY / "k8s-instance.yaml")
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    _check(K8sRunLauncher.config_type(), launcher["config"])

    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert [s["name"] for s in k8s["envSecrets"]] == launcher["config"]["env_secrets"]
    assert [c["name"] for c in k8s["envConfigMaps"]] == launcher["config"]["env_config_maps"]
    assert k8s["volumes"] == launcher["config"]["volumes"]
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert values["concurrency"]["pools"]["defaultLimit"] == config["concurrency"]["pools"]["default_limit"] == 1
    (code,) = values["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"] == ["--module-name", "orchestration.definitions"]


def test_the_image_and_services_point_at_what_exists():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is missing"
    assert '"--module-name", "orchestration.definitions"' in dockerfile
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "services.yaml").read_text()))
    commands = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["command"][0]
        for d in docs
        if d["kind"] == "Deployment"
    }
    scripts = (ROOT / "pyproject.toml").read_text()
    assert commands == {"stripe-receiver": "ttattr-stripe-receiver", "collector": "ttattr-collector"}
    assert all(f"{c} = " in scripts for c in commands.values())
