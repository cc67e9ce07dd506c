"""The Dagster code location: wires ingestion, dbt and reverse ETL together."""
