"""The dbt project as Dagster assets: staging, identity and attribution models, keyed [schema, model]."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import os
import sys

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.defs.ingestion import WAREHOUSE_POOL
from orchestration.resources import WarehouseResource

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

# dbt lives beside this interpreter (the project's .venv), which need not be on PATH.
_venv_dbt = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_venv_dbt) if _venv_dbt.exists() else "dbt"

GROUPS = {"staging": "staging", "intermediate": "identity", "marts": "attribution", "reference": "staging"}


def _manifest_is_stale() -> bool:
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", *(p for d in ("models", "macros", "seeds", "tests")
                                                        for p in (DBT_PROJECT_DIR / d).rglob("*") if p.is_file())]
    return any(p.stat().st_mtime > built for p in sources)


def prepare_manifest() -> Path:
    """Parse the dbt project when the manifest is missing or older than any project file."""
    if _manifest_is_stale():
        DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE).cli(["parse", "--quiet"], target_path=Path("target")).wait()
    return dbt_project.manifest_path


class Translator(DagsterDbtTranslator):
    """Asset keys [schema, name] (sources: raw.stripe_events -> ["raw", "stripe_events"], matching the
    loader assets), and groups that read as the pipeline: staging, identity, attribution."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])
        schema = dbt_resource_props["config"].get("schema") or "main"
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        schema = dbt_resource_props["config"].get("schema")
        if dbt_resource_props["name"].startswith("int_identity"):
            return "identity"
        return "attribution" if schema == "intermediate" else GROUPS.get(schema, "staging")


@dbt_assets(manifest=prepare_manifest(), dagster_dbt_translator=Translator(), pool=WAREHOUSE_POOL,
            project=dbt_project)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    # dbt reads the warehouse path from WAREHOUSE_PATH (profiles.yml); the resource decides it.
    os.environ["WAREHOUSE_PATH"] = str(warehouse.resolved_path)
    yield from dbt.cli(["build"], context=context).stream()


defs = dg.Definitions(assets=[dbt_models], resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)})
