"""Plain-Python reverse ETL to the TikTok Events API: normalisation, hashing, payloads, the delivery ledger.
No Dagster imports here."""
