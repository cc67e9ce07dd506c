import hashlib
from datetime import datetime
from decimal import Decimal

import pytest

from reverse_etl.hashing import (
    hash_compact,
    hash_email,
    hash_phone,
    normalise_email,
    normalise_phone,
    normalise_place,
    split_name,
)
from reverse_etl.payload import build_event


def sha(v: str) -> str:
    return hashlib.sha256(v.encode()).hexdigest()


def test_emails_are_trimmed_and_lowercased_before_hashing():
    assert normalise_email("  John.Doe@Gmail.COM ") == "john.doe@gmail.com"
    assert hash_email(" John.Doe@Gmail.COM") == sha("john.doe@gmail.com")
    assert hash_email("not an email") is None


@pytest.mark.parametrize(
    "typed", ["(415) 555-0123", "415.555.0123", "+1 415 555 0123", "001 415 555 0123", "+14155550123", "1-415-555-0123"]
)
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
    row = {
        "event_id": "in_1",
        "event_name": "Purchase",
        "event_time": datetime(2026, 6, 1, 12, 0, 0),
        "purchase_id": "in_1",
        "customer_id": "cust_1",
        "value": Decimal("29.000"),
        "currency": "USD",
        "ttclid": "E.C.P.abc",
        "ttp": "ttp-cookie",
        "emails": "a@b.co,c@d.co",
        "phones": "+14155550123",
        "ip": "203.0.113.7",
        "user_agent": "UA",
        "locale": "en-US",
        "page_url": "https://shop.example/?x=1",
    }
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


# Names and addresses as Segment's TikTok Conversions destination normalises them (formatter.ts: formatString
# removes whitespace and lowercases before SHA-256; formatAddress keeps [A-Za-z0-9], lowercased, unhashed).
NAME_VECTORS = [
    ("Maria de la Cruz", "maria", "delacruz"),
    ("  ANA   Smith ", "ana", "smith"),
    ("Cher", "cher", None),
    ("   ", None, None),
    (None, None, None),
]


@pytest.mark.parametrize("full,first,last", NAME_VECTORS)
def test_a_stripe_name_is_split_into_first_and_last_name_and_hashed_compact(full, first, last):
    got_first, got_last = split_name(full)
    assert hash_compact(got_first) == (sha(first) if first else None)
    assert hash_compact(got_last) == (sha(last) if last else None)


def test_zip_codes_are_hashed_compact_and_places_are_sent_alphanumeric_lowercase():
    assert hash_compact(" 94107 ") == sha("94107") == hash_compact("94 107")
    assert hash_compact("SW1A 1AA") == sha("sw1a1aa")
    assert hash_compact(sha("94107")) == sha("94107"), "already hashed: passed through"
    assert normalise_place("St. Louis") == "stlouis"
    assert normalise_place("US") == "us"
    assert normalise_place("New York") == "newyork"
    assert normalise_place(" - ") is None and normalise_place(None) is None


def test_a_purchase_with_a_stripe_name_and_address_carries_them_as_tiktok_documents_them():
    row = {
        "event_id": "in_1",
        "event_name": "Purchase",
        "event_time": 1780315200,
        "purchase_id": "in_1",
        "customer_id": "cust_1",
        "value": Decimal("29.000"),
        "currency": "USD",
        "emails": "a@b.co",
        "customer_name": "Maria de la Cruz",
        "address_city": "San Francisco",
        "address_state": "CA",
        "address_country": "US",
        "address_postal_code": "94107",
    }
    user = build_event(row)["user"]
    assert user["first_name"] == sha("maria") and user["last_name"] == sha("delacruz")
    assert user["zip_code"] == sha("94107")
    assert (user["city"], user["state"], user["country"]) == ("sanfrancisco", "ca", "us")
    assert "Maria" not in str(user) and "94107" not in str(user)
    bare = build_event({k: v for k, v in row.items() if not k.startswith(("customer_name", "address_"))})["user"]
    assert not {"first_name", "last_name", "zip_code", "city", "state", "country"} & set(bare)
