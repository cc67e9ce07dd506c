"""Plain-Python ingestion: landing-zone writer and loaders into the warehouse. No Dagster imports here."""
