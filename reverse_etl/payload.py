"""TikTok Events API 2.0 events (one element of the request's ``data``) built from marts.tiktok_conversions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from reverse_etl.hashing import hash_email, hash_external_id, hash_phone


@dataclass(frozen=True)
class PayloadSettings:
    default_phone_region: str = "US"
    limited_data_use: bool = False


def _split(values: str | None) -> list[str]:
    return [v for v in (values or "").split(",") if v.strip()]


def _unique(values) -> list[str]:
    return sorted({v for v in values if v})


def _epoch(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)  # the warehouse keeps UTC without a zone
    return int(ts.timestamp())


def _number(v):
    return float(v) if isinstance(v, Decimal) else v


def build_event(row: dict[str, Any], settings: PayloadSettings = PayloadSettings(),
                contents: list[dict] | None = None) -> dict[str, Any]:
    """One event of the request's ``data`` list. Personal data is hashed here, before it leaves.

    ``row`` is a row of marts.tiktok_conversions; ``contents`` its rows of marts.tiktok_conversion_contents.
    """
    user: dict[str, Any] = {}
    if row.get("ttclid"):
        user["ttclid"] = row["ttclid"]
    if row.get("ttp"):
        user["ttp"] = row["ttp"]
    emails = _unique(hash_email(e) for e in _split(row.get("emails")))
    phones = _unique(hash_phone(p, settings.default_phone_region) for p in _split(row.get("phones")))
    if emails:
        user["email"] = emails
    if phones:
        user["phone"] = phones
    external = hash_external_id(row.get("customer_id"))
    if external:
        user["external_id"] = [external]
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
