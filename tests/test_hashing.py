import hashlib
from datetime import datetime
from decimal import Decimal

import pytest

from reverse_etl.hashing import hash_email, hash_phone, normalise_email, normalise_phone
from reverse_etl.payload import build_event


def sha(v: str) -> str:
    return hashlib.sha256(v.encode()).hexdigest()


def test_emails_are_trimmed_and_lowercased_before_hashing():
    assert normalise_email("  John.Doe@Gmail.COM ") == "john.doe@gmail.com"
    assert hash_email(" John.Doe@Gmail.COM") == sha("john.doe@gmail.com")
    assert hash_email("not an email") is None


@pytest.mark.parametrize("typed", ["(415) 555-0123", "415.555.0123", "+1 415 555 0123", "001 415 555 0123",
                                   "+14155550123", "1-415-555-0123"])
def test_us_phones_in_any_format_become_e164(typed):
    assert normalise_phone(typed, "US") == "+14155550123"


def test_foreign_phones_and_default_regions():
    assert normalise_phone("+49 30 1234567") == "+49301234567"
    assert normalise_phone("030 1234567", "DE") == "+49301234567"
    assert normalise_phone("12", "US") is None
    assert normalise_phone("call me", "US") is None


def test_already_hashed_values_are_passed_through_not_hashed_twice():
    h = sha("john@example.org")
    assert hash_email(h) == h
    assert hash_email(h.upper()) == h
    assert hash_phone(sha("+14155550123")) == sha("+14155550123")


def test_payload_hashes_personal_data_and_keeps_click_ids_in_clear():
    row = {"event_id": "in_1", "event_name": "Purchase", "event_time": datetime(2026, 6, 1, 12, 0, 0),
           "purchase_id": "in_1", "customer_id": "cust_1", "value": Decimal("29.000"), "currency": "USD",
           "ttclid": "E.C.P.abc", "ttp": "ttp-cookie", "emails": "a@b.co,c@d.co", "phones": "+14155550123",
           "ip": "203.0.113.7", "user_agent": "UA", "locale": "en-US", "page_url": "https://shop.example/?x=1"}
    e = build_event(row)
    assert e["event_id"] == e["properties"]["order_id"] == "in_1"
    assert e["event_time"] == 1780315200
    assert e["user"]["ttclid"] == "E.C.P.abc" and e["user"]["ttp"] == "ttp-cookie"
    assert e["user"]["email"] == sorted([sha("a@b.co"), sha("c@d.co")])
    assert e["user"]["phone"] == [sha("+14155550123")]
    assert e["user"]["external_id"] == [sha("cust_1")]
    assert e["properties"]["value"] == 29.0 and e["page"]["url"].startswith("https://shop.example/")
    assert "a@b.co" not in str(e)


# Fixed vectors: the normalised value and its SHA-256, lowercase hex (as TikTok's docs show them).
EMAIL_VECTORS = [
    ("john.doe@example.com", "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"),
    ("  John.Doe@Example.COM ", "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"),
    ("JOHN.DOE@EXAMPLE.COM\t", "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f"),
]
PHONE_VECTORS = [
    ("(415) 555-0123", "US", "36a2cef4ff9bf7a1abd2a93359136b870393be4106e6c5d19b72ff564f9deca4"),
    ("+1 415-555-0123", "DE", "36a2cef4ff9bf7a1abd2a93359136b870393be4106e6c5d19b72ff564f9deca4"),
    ("0014155550123", "US", "36a2cef4ff9bf7a1abd2a93359136b870393be4106e6c5d19b72ff564f9deca4"),
    ("020 7183 8750", "GB", "e631c2534428c6c9b48c2167604a8983046085e43a2c00ed748733c544c0bb4d"),
    ("+44 (0)20 7183 8750", "US", "e631c2534428c6c9b48c2167604a8983046085e43a2c00ed748733c544c0bb4d"),
    ("03-1234-5678", "JP", "7d7350df0a907cf9cf79b40e32af0a5cc71886126b86babd1f2ccedd25d336c6"),
]


def test_sha256_itself_matches_the_published_vector():
    assert sha("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("typed,expected", EMAIL_VECTORS)
def test_email_hash_vectors(typed, expected):
    assert hash_email(typed) == expected


@pytest.mark.parametrize("typed,region,expected", PHONE_VECTORS)
def test_phone_hash_vectors(typed, region, expected):
    assert hash_phone(typed, region) == expected
