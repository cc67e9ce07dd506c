"""TikTok Events API 2.0 events (one element of the request's ``data``) built from marts.tiktok_conversions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

import phonenumbers

from ingestion.settings import env_field
from reverse_etl.hashing import hash_compact, hash_email, hash_external_id, hash_phone, normalise_place, split_name


@dataclass(frozen=True)
class PayloadSettings:
    default_phone_region: str = env_field("TIKTOK_DEFAULT_PHONE_REGION", "US")
    limited_data_use: bool = env_field("TIKTOK_LIMITED_DATA_USE", False)

    def __post_init__(self):
        if self.default_phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"TIKTOK_DEFAULT_PHONE_REGION must be a region code such as US or GB, not {self.default_phone_region!r}"
            )


def _hashed_list(values: str | None, hasher, *args) -> list[str]:
    """Comma-separated clear values -> sorted unique hashes (invalid values dropped)."""
    if not values:
        return []
    out = {hasher(v, *args) for v in values.split(",")}
    out.discard(None)
    return sorted(out)


def _epoch(ts) -> int:
    if isinstance(ts, int):
        return ts
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)  # the warehouse keeps UTC without a zone
    return int(ts.timestamp())


def _number(v):
    return float(v) if isinstance(v, Decimal) else v


def build_event(
    row: dict[str, Any], settings: PayloadSettings = PayloadSettings(), contents: list[dict] | None = None
) -> dict[str, Any]:
    """One event of the request's ``data`` list. Personal data is hashed here, before it leaves.

    ``row`` is a row of marts.tiktok_conversions (``event_time`` a datetime in UTC or Unix seconds);
    ``contents`` its rows of marts.tiktok_conversion_contents.
    """
    user: dict[str, Any] = {}
    for key in ("ttclid", "ttp"):
        if row.get(key):
            user[key] = row[key]
    emails = _hashed_list(row.get("emails"), hash_email)
    if emails:
        user["email"] = emails
    phones = _hashed_list(row.get("phones"), hash_phone, settings.default_phone_region)
    if phones:
        user["phone"] = phones
    external = hash_external_id(row.get("customer_id"))
    if external:
        user["external_id"] = [external]
    first, last = split_name(row.get("customer_name"))
    for key, value in (
        ("first_name", hash_compact(first)),
        ("last_name", hash_compact(last)),
        ("zip_code", hash_compact(row.get("address_postal_code"))),
        ("city", normalise_place(row.get("address_city"))),
        ("state", normalise_place(row.get("address_state"))),
        ("country", normalise_place(row.get("address_country"))),
    ):
        if value:
            user[key] = value
    for key in ("ip", "user_agent", "locale"):
        if row.get(key):
            user[key] = row[key]
    event: dict[str, Any] = {
        "event": row["event_name"],
        "event_time": _epoch(row["event_time"]),
        "event_id": row["event_id"],
        "user": user,
        "limited_data_use": settings.limited_data_use,
    }
    if row.get("purchase_id"):
        properties: dict[str, Any] = {
            "currency": row["currency"],
            "value": _number(row["value"]),
            "order_id": row["purchase_id"],
            "content_type": "product",
        }
        contents = [c for c in contents or () if c.get("content_id") is not None]
        if contents:
            properties["contents"] = [_content(c) for c in contents]
            properties["num_items"] = sum(int(c.get("quantity") or 1) for c in contents)
        event["properties"] = properties
    if row.get("page_url"):
        event["page"] = {"url": row["page_url"]}
    return event


def _content(c: dict) -> dict:
    out = {"content_id": str(c["content_id"]), "content_type": c.get("content_type") or "product"}
    if c.get("content_name"):
        out["content_name"] = c["content_name"]
    if c.get("quantity") is not None:
        out["quantity"] = int(c["quantity"])
    if c.get("price") is not None:
        out["price"] = _number(c["price"])
    return out
