"""The code location: ingestion, dbt, activation and automation, with resources from the environment."""

import dagster as dg

from orchestration.defs import activation, automation, dbt, ingestion
from orchestration.resources import default_resources

defs = dg.Definitions.merge(
    ingestion.defs, dbt.defs, activation.defs, automation.defs,
    dg.Definitions(resources=default_resources()),
)
