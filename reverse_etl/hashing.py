"""Normalisation and SHA-256 hashing of match keys, as TikTok's Events API expects them.

email: trimmed, lowercased. phone: E.164 (parsed with `phonenumbers`, a default region for numbers typed
without a country code; what cannot be parsed is dropped). A value that already is 64 hex characters is
passed through, never hashed twice. ttclid, ttp, ip, user agent and locale are never hashed.

Names and addresses as Segment's TikTok Conversions destination sends them (segmentio/action-destinations,
``tiktok-conversions/formatter.ts``, ``formatString`` and ``formatAddress``): first_name, last_name and zip_code
lose every whitespace character, are lowercased and SHA-256 hashed; city, state and country keep only ASCII
letters and digits, lowercased, and are sent in clear (TikTok's schema does not hash them). Stripe keeps one
``name``: its first word is the first name, the rest the last name.
"""

from __future__ import annotations

import hashlib
import re

import phonenumbers

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_WHITESPACE = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def is_sha256(value: str) -> bool:
    return bool(_SHA256.match(value))


def normalise_email(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    return v if "@" in v or is_sha256(v) else None


def normalise_phone(value: str | None, default_region: str = "US") -> str | None:
    if value is None or not value.strip():
        return None
    v = value.strip()
    if is_sha256(v):
        return v.lower()
    if _E164.match(v):
        # already E.164 (the warehouse normalises phones): canonical as it stands, and parsing it again
        # would cost more than everything else in a payload together
        return v
    if v.startswith("00"):
        v = "+" + v[2:]
    try:
        parsed = phonenumbers.parse(v, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def hash_email(value: str | None) -> str | None:
    v = normalise_email(value)
    return None if v is None else (v if is_sha256(v) else sha256_hex(v))


def hash_phone(value: str | None, default_region: str = "US") -> str | None:
    v = normalise_phone(value, default_region)
    return None if v is None else (v if is_sha256(v) else sha256_hex(v))


def hash_external_id(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    v = value.strip()
    return v.lower() if is_sha256(v) else sha256_hex(v)


def split_name(full_name: str | None) -> tuple[str | None, str | None]:
    """Stripe's one ``name`` field as (first name, last name): the first word, and the rest."""
    parts = (full_name or "").split()
    if not parts:
        return None, None
    return parts[0], (" ".join(parts[1:]) or None)


def hash_compact(value: str | None) -> str | None:
    """first_name, last_name, zip_code: whitespace removed, lowercased, SHA-256; empty -> None."""
    if value is None:
        return None
    v = _WHITESPACE.sub("", value)
    if not v:
        return None
    return v.lower() if is_sha256(v) else sha256_hex(v.lower())


def normalise_place(value: str | None) -> str | None:
    """city, state, country: ASCII letters and digits only, lowercased (sent in clear); empty -> None."""
    if value is None:
        return None
    return _NOT_ALNUM.sub("", value).lower() or None
