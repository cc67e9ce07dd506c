"""Tracking staging: channel grouping from the seeds, referrer kinds, bots, and what the tracker carries."""

import json

import pytest

pytestmark = pytest.mark.slow

UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
)
CASES = {  # anonymous id: (landing URL query, referrer, expected channel, source, medium)
    "tiktok": ("?ttclid=E.C.P.1&utm_source=tiktok&utm_medium=paid&utm_campaign=bf", "", "TikTok Ads", "tiktok", "paid"),
    "gads": ("?gclid=Cj0K", "https://www.google.com/", "Google Ads", "google", "paid"),
    "gbraid": ("?gbraid=0AAAA", "", "Google Ads", "google", "paid"),
    "meta": ("?fbclid=IwAR", "https://l.facebook.com/", "Meta Ads", "facebook", "paid"),
    "bing": ("?msclkid=abc", "", "Microsoft Ads", "bing", "paid"),
    "linkedin": ("?li_fat_id=abc", "", "LinkedIn Ads", "linkedin", "paid"),
    "x": ("?twclid=abc", "", "X Ads", "x", "paid"),
    "utm_paid": ("?utm_source=facebook&utm_medium=cpc", "", "Meta Ads", "facebook", "cpc"),
    "utm_other_paid": ("?utm_source=newsite&utm_medium=display", "", "Other Paid", "newsite", "display"),
    "email": ("?utm_source=klaviyo&utm_medium=email&utm_campaign=winback", "", "Email", "klaviyo", "email"),
    "seo": ("", "https://www.google.com/", "Organic Search", "google", "organic"),
    "social": ("", "https://www.instagram.com/", "Organic Social", "instagram", "social"),
    "tiktok_organic": ("", "https://www.tiktok.com/", "Organic Social", "tiktok", "social"),
    "referral": ("", "https://blog.example.org/post", "Referral", "blog.example.org", "referral"),
    "direct": ("", "", "Direct", "(direct)", "(none)"),
}


def page(
    anonymous_id: str,
    query: str,
    referrer: str,
    ua: str = UA,
    at: str = "2026-11-20T10:00:00.000Z",
    path: str = "/",
    **context,
) -> dict:
    return {
        "type": "page",
        "messageId": f"m-{anonymous_id}-{at}",
        "anonymousId": anonymous_id,
        "timestamp": at,
        "context": {
            "page": {"url": f"https://shop.example{path}{query}", "referrer": referrer, "path": path},
            "userAgent": ua,
            **context,
        },
    }


def test_channels_referrers_bots_and_carried_touches_are_staged(workspace):
    events = [page(a, q, r) for a, (q, r, *_rest) in CASES.items()]
    events += [
        page(
            "googlebot",
            "?utm_source=tiktok&utm_medium=paid",
            "",
            ua="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ),
        page("headless", "", "", ua="Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/156.0 Safari/537.36"),
        # a later page of the TikTok visitor: no click id in its URL, the tracker carries the landing's
        page(
            "tiktok",
            "",
            "https://shop.example/",
            at="2026-11-20T10:05:00.000Z",
            path="/checkout",
            attribution={
                "clickIds": {"ttclid": "E.C.P.1"},
                "campaign": {"source": "tiktok", "name": "bf"},
                "landingUrl": "https://shop.example/?ttclid=E.C.P.1",
            },
        ),
        {
            "type": "identify",
            "messageId": "m-id",
            "anonymousId": "tiktok",
            "timestamp": "2026-11-20T10:06:00Z",
            "traits": {"email": " Ann@Example.COM ", "phone": "(415) 555-0100", "firstName": "Ann"},
        },
        {
            "type": "track",
            "messageId": "m-lead",
            "anonymousId": "tiktok",
            "timestamp": "2026-11-20T10:06:00Z",
            "event": "Lead",
            "properties": {"form_id": "signup"},
            "traits": {"email": "ann@example.com"},
            "context": {"attribution": {"clickIds": {"ttclid": "E.C.P.1"}}},
        },
    ]
    folder = workspace.landing / "tracking"
    folder.mkdir(parents=True)
    (folder / "cases.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    workspace.dbt(
        "build",
        "--select",
        "+int_page_channels",
        "+stg_tracking__identifies",
        "+stg_tracking__tracks",
        "+int_touches",
    )
    pages = {
        r[0]: r[1:]
        for r in workspace.query(
            "select anonymous_id, channel, source, medium, is_bot from intermediate.int_page_channels "
            "where page_path = '/'"
        )
    }
    for anonymous_id, (_q, _r, channel, source, medium) in CASES.items():
        assert pages[anonymous_id] == (channel, source, medium, False), anonymous_id
    assert pages["googlebot"][3] is True and pages["headless"][3] is True
    touches = {r[0] for r in workspace.query("select anonymous_id from intermediate.int_touches")}
    assert touches == set(CASES), "bots are never touches; the TikTok visitor's second page is the same visit"
    later = workspace.query(
        "select click_id, carried_click_id_type, carried_ttclid, carried_utm_campaign "
        "from staging.stg_tracking__events where message_id like 'm-tiktok-%10:05%'"
    )
    assert later == [(None, "ttclid", "E.C.P.1", "bf")]
    assert workspace.query(
        "select trait_first_name, email_normalised, phone_normalised from staging.stg_tracking__identifies"
    ) == [("Ann", "ann@example.com", "+14155550100")]
    lead = workspace.query(
        "select event_name, is_lead, carried_ttclid, json_extract_string(properties, '$.form_id') "
        "from staging.stg_tracking__tracks"
    )
    assert lead == [("Lead", True, "E.C.P.1", "signup")]
