"""Validation of every payload against the JSON schema kept in the repo, before anything is sent."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema_rs

SCHEMA_PATH = Path(__file__).with_name("schema") / "tiktok_event.schema.json"


@cache
def _validator():
    return jsonschema_rs.validator_for(json.loads(SCHEMA_PATH.read_text()))


def event_error(event: dict) -> str | None:
    """None when the event is valid, else the first problem as 'path: message'."""
    v = _validator()
    if v.is_valid(event):
        return None
    err = next(iter(v.iter_errors(event)))
    path = "/".join(str(p) for p in err.instance_path) or "(event)"
    return f"{path}: {err.message}"


@cache
def _batch_validator():
    return jsonschema_rs.validator_for({"type": "array", "items": json.loads(SCHEMA_PATH.read_text())})


def all_valid(events: list) -> bool:
    """One check for a whole batch (the common case); ``event_error`` then finds which events failed."""
    return _batch_validator().is_valid(events)
