"""The code location: ingestion, dbt, activation and automation, with resources from the environment."""

from ingestion.config import owner_only_files
from orchestration.gctuning import collection_paused

owner_only_files()  # the warehouse, dbt's target and Dagster's storage hold personal data: see ingestion/config.py

# loading creates objects that live as long as the process, and little garbage: see orchestration/gctuning.py
with collection_paused():
    import dagster as dg

    from orchestration.defs import (
        activation,
        automation,
        checks,
        dbt,
        ingestion,
        privacy,
        stripe,
    )
    from orchestration.resources import default_resources


def build_defs(resources: dict | None = None) -> dg.Definitions:
    """All definitions, with the given resources (default: from the environment)."""
    return dg.Definitions.merge(
        ingestion.defs,
        stripe.defs,
        dbt.defs,
        activation.defs,
        checks.defs,
        automation.defs,
        privacy.defs,
        dg.Definitions(resources=resources if resources is not None else default_resources()),
    )


with collection_paused():
    defs = build_defs()
