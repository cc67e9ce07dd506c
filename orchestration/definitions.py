"""The code location: ingestion, dbt, activation and automation, with resources from the environment."""

from ingestion.config import owner_only_files
from orchestration.gctuning import collection_paused

owner_only_files()  # the warehouse, dbt's target and Dagster's storage hold personal data: see ingestion/config.py

# loading creates objects that live as long as the process, and little garbage: see orchestration/gctuning.py
with collection_paused():
    from pathlib import Path

    import dagster as dg

    from orchestration.resources import default_resources

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def build_defs(resources: dict | None = None) -> dg.Definitions:
    """Every module of orchestration/defs (Dagster's defs folder, `[tool.dg]` in pyproject.toml), with the given
    resources (default: from the environment)."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=PROJECT_ROOT),
        dg.Definitions(resources=resources if resources is not None else default_resources()),
    )


with collection_paused():
    defs = build_defs()
