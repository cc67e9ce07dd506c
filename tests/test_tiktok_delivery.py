"""TikTok delivery over real HTTP against the fake Events API, with faults injected."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import duckdb
import pytest

from fakes.tiktok import FakeTikTok
from reverse_etl.deliver import DeliverySettings, DeliveryStopped, SendPolicy, deliver
from simulator.conversions import make_conversions

NOW = datetime(2026, 11, 26, 12, 0, 0)
TOKEN, PIXEL = "test-token", "TESTPIXEL"


@pytest.fixture
def fake():
    with FakeTikTok(access_tokens=[TOKEN], pixel_codes=[PIXEL]) as f:
        yield f


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "wh.duckdb"))
    yield c
    c.close()


def settings(fake, **kw) -> DeliverySettings:
    base = dict(
        access_token=TOKEN,
        pixel_code=PIXEL,
        api_base_url=fake.url,
        now=NOW,
        timeout_seconds=2,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
    )
    base.update(kw)
    return DeliverySettings(**base)


def ledger(con) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in con.execute(
            "select event_id, status, attempts, last_code, last_message from reverse_etl.tiktok_deliveries"
        ).fetchall()
    }


def eligible_ids(con) -> set[str]:
    return {r[0] for r in con.execute("select event_id from marts.tiktok_conversions where eligible").fetchall()}


def test_every_eligible_conversion_is_accepted_exactly_once_despite_faults(fake, con):
    make_conversions(con, 1200, NOW, consent_denied_every=50)
    fake.inject(
        latency_ms=5,
        script=[{"http": 500}, {"code": 40100}, {"drop": True}, {"timeout": 3}, {"http": 503}, {"code": 40100}],
    )
    result = deliver(con, settings(fake, batch_size=100, concurrency=3))
    accepted = fake.accepted_ids()
    assert set(accepted) == eligible_ids(con)
    assert fake.stats()["accepted_unique"] == len(eligible_ids(con))
    rows = ledger(con)
    assert {rows[e][0] for e in eligible_ids(con)} == {"sent"}
    assert {s for s, *_ in rows.values()} == {"sent", "no_consent"}
    assert result["sent"] == len(eligible_ids(con)) and result["no_consent"] == 24
    # the batch that timed out after being accepted was sent again: under the same ids, counted once
    assert fake.stats()["duplicates"] == 100
    # a second run sends nothing
    before = fake.stats()["requests"]
    again = deliver(con, settings(fake, batch_size=100))
    assert fake.stats()["requests"] == before and again["sent"] == 0


def test_one_bad_event_is_isolated_by_bisection_and_fails_alone_with_its_reason(fake, con):
    make_conversions(con, 1000, NOW)
    bad = {"conv_000000137", "conv_000000642"}
    fake.inject(bad_event_ids=bad)
    deliver(con, settings(fake))
    rows = ledger(con)
    assert set(fake.accepted_ids()) == eligible_ids(con) - bad
    for e in bad:
        status, attempts, code, message = rows[e]
        assert status == "failed_permanent" and code == 40002 and "Invalid parameter" in message
    assert fake.stats()["requests"] < 60, "bisection, not one request per event"


def test_retryable_failures_stop_after_the_run_limit_and_give_up_after_the_total_limit(fake, con):
    make_conversions(con, 10, NOW)
    fake.inject(script=[{"http": 500}] * 1000)
    s = settings(fake, max_attempts_per_run=3, max_total_attempts=7)
    deliver(con, s)
    assert {r[:2] for r in ledger(con).values()} == {("failed_retryable", 3)}
    deliver(con, s)
    assert {r[:2] for r in ledger(con).values()} == {("failed_retryable", 6)}
    deliver(con, s)
    rows = ledger(con)
    assert {r[:2] for r in rows.values()} == {("failed_permanent", 7)}
    assert all(r[3].startswith("gave up after 7 attempts") for r in rows.values())
    requests = fake.stats()["requests"]
    deliver(con, s)
    assert fake.stats()["requests"] == requests == 7, "nothing retries forever"
    assert not fake.accepted_ids()


def test_a_permission_error_stops_the_run_with_an_actionable_message(fake, con):
    make_conversions(con, 50, NOW)
    fake.inject(deny=True)
    with pytest.raises(DeliveryStopped) as stop:
        deliver(con, settings(fake, batch_size=10, concurrency=1))
    assert "TIKTOK_ACCESS_TOKEN" in str(stop.value) and PIXEL in str(stop.value)
    assert fake.stats()["requests"] <= 2, "no hammering with a token that cannot work"
    assert {r[0] for r in ledger(con).values()} <= {"failed_retryable"}
    fake.inject(deny=False)
    deliver(con, settings(fake, batch_size=10))
    assert set(fake.accepted_ids()) == eligible_ids(con)


def test_an_unknown_token_is_a_permission_error_too(fake, con):
    make_conversions(con, 5, NOW)
    with pytest.raises(DeliveryStopped, match="refused the access token"):
        deliver(con, settings(fake, access_token="wrong"))


def test_policy_consent_and_age_decide_what_is_sent(fake, con):
    make_conversions(
        con, 100, NOW, consent_denied_every=10, renewal_every=4, not_tiktok_every=5, age_hours_span=24 * 20
    )
    s = settings(fake, policy=SendPolicy(scope="tiktok_attributed", include_renewals=False, max_event_age_days=7))
    result = deliver(con, s)
    rows = ledger(con)
    conv = {
        r[0]: r[1:]
        for r in con.execute(
            "select event_id, advertising_consent, attributed_to_tiktok, is_renewal, event_time "
            "from marts.tiktok_conversions"
        ).fetchall()
    }
    for event_id, (consent, tiktok, renewal, at) in conv.items():
        status = rows.get(event_id, (None,))[0]
        if not consent:
            assert status == "no_consent"
        elif not tiktok or renewal:
            assert status is None, "outside the policy: not recorded, not sent"
        elif (NOW - at).days >= 7:
            assert status == "expired"
        else:
            assert status == "sent"
    assert set(fake.accepted_ids()) == {e for e, r in rows.items() if r[0] == "sent"}
    assert result["excluded_by_policy"] > 0 and result["expired"] > 0 and result["sent"] > 0


def test_an_invalid_payload_is_never_sent_and_says_why(fake, con):
    make_conversions(con, 3, NOW)
    con.execute("update marts.tiktok_conversions set currency = 'US Dollars' where event_id = 'conv_000000001'")
    deliver(con, settings(fake))
    status, _, _, message = ledger(con)["conv_000000001"]
    assert status == "failed_permanent" and "properties/currency" in message
    assert "conv_000000001" not in fake.accepted_ids() and len(fake.accepted_ids()) == 2


def test_validation_workers_check_every_batch_and_refuse_the_invalid_ones(fake, con):
    # worker processes from the first batch (by default they start once a run has 5,000 events to send)
    make_conversions(con, 2500, NOW)
    bad = ("conv_000000007", "conv_000001999")
    con.execute(f"update marts.tiktok_conversions set currency = 'dollars' where event_id in {bad}")
    result = deliver(con, settings(fake, batch_size=400, concurrency=3, validation_processes=2))
    rows = ledger(con)
    for e in bad:
        assert rows[e][0] == "failed_permanent" and "properties/currency" in rows[e][3]
    assert set(fake.accepted_ids()) == eligible_ids(con) - set(bad)
    assert result["sent"] == len(eligible_ids(con)) - 2 and fake.stats()["duplicates"] == 0


def test_a_validation_worker_that_dies_fails_the_batch_loudly_and_sends_nothing_unchecked():
    from reverse_etl.validate import ValidatorPool, batch_problems

    events = [
        '{"event":"Purchase","event_time":1790000000,"event_id":"e1","user":{"ttp":"x"}}',
        '{"event":"Purchase","event_time":1790000000000,"event_id":"e2","user":{"ttp":"x"}}',
        '{"event":"Purchase",',
    ]
    with ValidatorPool(1) as pool:
        assert pool.problems(events) == batch_problems(events)
        assert [i for i, _ in batch_problems(events)] == [1, 2]
        assert "not valid JSON" in batch_problems(events)[1][1]
        pool._procs[0].kill()
        pool._procs[0].wait()
        with pytest.raises(RuntimeError, match="validation worker .* exited"):
            pool.problems(events[:1])


def test_the_fakes_fast_check_is_never_looser_than_its_documented_rules():
    """The fake accepts a batch on a JSON schema's word (for speed); every event that schema passes must pass
    validate_event too, so the fake refuses exactly what TikTok's documented rules refuse."""
    from fakes.tiktok import InvalidParameter, _fast_valid, validate_event

    good = {
        "event": "Purchase",
        "event_time": 1790000000,
        "event_id": "e1",
        "user": {"email": ["a" * 64], "phone": "b" * 64, "ttclid": "x"},
        "properties": {"value": 1.5, "currency": "USD", "contents": [{"content_id": "p1"}]},
    }
    variants = [good]
    for path, value in [
        (("event",), ""),
        (("event",), 5),
        (("event_time",), 1.0),
        (("event_time",), True),
        (("event_time",), 1790000000000),
        (("event_time",), "1790000000"),
        (("event_id",), 7),
        (("user",), None),
        (("user",), []),
        (("user", "email"), []),
        (("user", "email"), ["A" * 64]),
        (("user", "email"), "a" * 63),
        (("user", "phone"), ["b" * 64, 5]),
        (("user", "external_id"), "x@y.z"),
        (("properties",), "x"),
        (("properties", "value"), "1"),
        (("properties", "value"), False),
        (("properties", "currency"), "usd"),
        (("properties", "currency"), "USD\n"),
        (("properties", "contents"), [{"content_id": 5}]),
        (("properties", "contents"), "abc"),
        (("properties", "contents"), None),
        (("properties", "contents"), [{}]),
    ]:
        event = json.loads(json.dumps(good))
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        variants.append(event)
    variants += [{"event": "Purchase"}, {"event_time": 1790000000}, "not an event"]
    for event in variants:
        try:
            validate_event(0, event)
            valid = True
        except InvalidParameter:
            valid = False
        if _fast_valid([event]):
            assert valid, event


def test_dry_run_records_payloads_and_a_later_run_with_credentials_sends_them(fake, con):
    make_conversions(con, 20, NOW)
    dry = deliver(con, DeliverySettings(now=NOW))
    assert dry.dry_run and dry["dry_run"] == 20 and fake.stats()["requests"] == 0
    assert deliver(con, DeliverySettings(now=NOW))["dry_run"] == 0, "a second dry run records nothing new"
    payload = con.execute("select payload from reverse_etl.tiktok_deliveries limit 1").fetchall()[0][0]
    assert "@" not in payload and '"ttclid"' in payload
    deliver(con, settings(fake, test_event_code="TEST123"))
    assert set(fake.accepted_ids()) == eligible_ids(con)
    assert fake.stats()["test_event_codes"] == {"TEST123": 20}


def test_the_request_rate_cap_keeps_the_sender_under_tiktoks_limit(fake, con):
    make_conversions(con, 60, NOW)
    # 12 batches and 4 connections would all arrive within a moment; the cap spaces them out (with room for
    # the scheduling jitter of a fake that shares the machine with the sender)
    fake.inject(rate_limit_per_second=4)
    deliver(con, settings(fake, batch_size=5, concurrency=4, requests_per_second=2))
    assert fake.stats()["codes"].get("40100", 0) == 0
    assert set(fake.accepted_ids()) == eligible_ids(con)


def test_payloads_carry_contents_and_hashed_match_keys(fake, con):
    make_conversions(con, 2, NOW)
    deliver(con, settings(fake))
    event = fake.accepted_events["conv_000000001"]
    assert event["properties"]["contents"] == [
        {"content_id": "prod_pro", "content_type": "product", "content_name": "Pro plan", "quantity": 1, "price": 39.0}
    ]
    assert len(event["user"]["email"]) == 2 and all(len(h) == 64 for h in event["user"]["email"])
    assert event["user"]["ttclid"] == "E.C.P.click1" and event["properties"]["order_id"] == "in_000000001"


def test_killed_mid_run_then_run_again_loses_nothing(fake, tmp_path):
    warehouse = tmp_path / "crash.duckdb"
    with duckdb.connect(str(warehouse)) as c:
        make_conversions(c, 600, NOW)
        expected = eligible_ids(c)
    fake.inject(latency_ms=150)
    env = {
        **os.environ,
        "WAREHOUSE_PATH": str(warehouse),
        "TIKTOK_ACCESS_TOKEN": TOKEN,
        "TIKTOK_PIXEL_CODE": PIXEL,
        "TIKTOK_API_BASE_URL": fake.url,
        "TIKTOK_BATCH_SIZE": "20",
        "TIKTOK_CONCURRENCY": "2",
        "TIKTOK_MAX_EVENT_AGE_DAYS": "3650",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "reverse_etl"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while fake.stats()["accepted_unique"] < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # requests already in the fake finish there (it does not know the sender died)
    before_kill = set(fake.accepted_ids())
    killed_at = len(before_kill)
    assert 0 < killed_at < len(expected), "the process was killed mid-run"
    fake.inject(latency_ms=0)
    out = subprocess.run([sys.executable, "-m", "reverse_etl"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    accepted = fake.accepted_ids()
    assert set(accepted) == expected, "no conversion lost"
    with duckdb.connect(str(warehouse), read_only=True) as c:
        assert {r[0] for r in c.execute("select status from reverse_etl.tiktok_deliveries").fetchall()} == {"sent"}
    resent = {e for e, n in accepted.items() if n > 1}
    # what was accepted but not yet in the ledger when the process died is sent again, under the same ids
    # (TikTok deduplicates them); the second run itself sends each event once
    assert resent <= before_kill
    assert len(resent) < len(before_kill)


def test_bad_configuration_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="TIKTOK_BATCH_SIZE"):
        DeliverySettings(batch_size=5000)
    with pytest.raises(ValueError, match="TIKTOK_SEND_SCOPE"):
        SendPolicy(scope="everything")
    with pytest.raises(ValueError, match="TIKTOK_CONCURRENCY='many'"):
        DeliverySettings.from_env({"TIKTOK_CONCURRENCY": "many"})


def _both_builders(con, settings_=None):
    """Each candidate's event as DuckDB builds it and as build_event builds it."""
    import orjson

    from reverse_etl.candidates import CANDIDATE_COLUMNS, candidate_chunks, python_contents, python_row
    from reverse_etl.ledger import ensure_ledger
    from reverse_etl.payload import build_event

    ensure_ledger(con)
    s = settings_ or DeliverySettings(now=NOW, policy=SendPolicy(max_event_age_days=10_000))
    rows = [
        dict(zip(CANDIDATE_COLUMNS, r, strict=False))
        for chunk in candidate_chunks(con, s, oldest=0)
        for r in chunk
        if r[CANDIDATE_COLUMNS.index("action")] == "send"
    ]
    contents = python_contents(con, {r["event_id"] for r in rows})
    return [
        (
            r["event_id"],
            None if r["sql_payload"] is None else orjson.loads(r["sql_payload"]),
            build_event(python_row(con, r["event_id"]), s.payload, contents.get(r["event_id"])),
        )
        for r in rows
    ]


def test_duckdb_builds_exactly_the_events_python_builds(con):
    make_conversions(con, 40, NOW)
    con.execute("""
        update marts.tiktok_conversions set
            emails = case event_id
                when 'conv_000000001' then '  MIXED.Case@Example.ORG\t, mixed.case@example.org ,,'
                when 'conv_000000002' then '836F82DB99121B3481011F16B49DFA5FBC714A0D1B1B9F784A1EBBBF5B39577F'
                when 'conv_000000003' then 'not-an-email, ,'
                when 'conv_000000004' then null
                when 'conv_000000005' then 'josé@exämple.org'
                else emails end,
            phones = case event_id
                when 'conv_000000006' then '(415) 555-0123'
                when 'conv_000000007' then '36A2CEF4FF9BF7A1ABD2A93359136B870393BE4106E6C5D19B72FF564F9DECA4'
                when 'conv_000000008' then ' +14155550123 ,+14155550123'
                when 'conv_000000009' then ''
                else phones end,
            ttclid = case when event_id = 'conv_000000010' then '' else ttclid end,
            ttp = case when event_id = 'conv_000000011' then null else ttp end,
            page_url = case when event_id = 'conv_000000012' then null else page_url end,
            customer_id = case when event_id = 'conv_000000013' then '  ' else customer_id end,
            purchase_id = case when event_id = 'conv_000000014' then null else purchase_id end,
            event_name = case when event_id = 'conv_000000014' then 'Lead' else event_name end,
            user_agent = case when event_id = 'conv_000000015' then 'Mozilla "quoted" \\ back' else user_agent end,
            customer_name = case event_id
                when 'conv_000000021' then '  Maria  de la Cruz '
                when 'conv_000000022' then 'Cher'
                when 'conv_000000023' then 'Jürgen Müller'
                when 'conv_000000024' then '   '
                when 'conv_000000025' then null
                else customer_name end,
            address_city = case when event_id = 'conv_000000024' then 'St. Louis'
                                when event_id = 'conv_000000025' then null else address_city end,
            address_postal_code = case when event_id = 'conv_000000024' then ' 63 101 '
                                       when event_id = 'conv_000000025' then '' else address_postal_code end,
            address_state = case when event_id = 'conv_000000025' then '--' else address_state end,
            address_country = case when event_id = 'conv_000000025' then null else address_country end
    """)
    con.execute("""
        update marts.tiktok_conversion_contents set
            content_name = case when event_id = 'conv_000000016' then null else content_name end,
            quantity = case when event_id = 'conv_000000017' then 3 else quantity end,
            price = case when event_id = 'conv_000000018' then null else price end
    """)
    con.execute("delete from marts.tiktok_conversion_contents where event_id = 'conv_000000019'")
    con.execute(
        "insert into marts.tiktok_conversion_contents values "
        "('conv_000000020', 'in_000000020:il_2', 'price_extra', 'Extra', 'product', 2, 5.5)"
    )
    built = _both_builders(con)
    fallback = {e for e, sql, _ in built if sql is None}
    assert fallback == {"conv_000000005", "conv_000000006", "conv_000000023"}, "only what needs Python falls back"
    for event_id, sql, python in built:
        if sql is not None:
            assert sql == python, event_id
    assert dict((e, p) for e, _, p in built)["conv_000000020"]["properties"]["num_items"] == 3
    users = {e: p["user"] for e, _, p in built}
    assert {"first_name", "last_name", "zip_code", "city", "state", "country"} <= set(users["conv_000000021"])
    assert "last_name" not in users["conv_000000022"] and "first_name" not in users["conv_000000024"]
    assert users["conv_000000024"]["city"] == "stlouis"
    assert not {"first_name", "zip_code", "city", "state", "country"} & set(users["conv_000000025"])


def test_the_ledger_forgets_ip_and_user_agent_of_settled_events_after_the_retention(fake, con):
    make_conversions(con, 20, NOW)
    deliver(con, settings(fake))
    payloads = [json.loads(p) for (p,) in con.execute("select payload from reverse_etl.tiktok_deliveries").fetchall()]
    assert payloads and all("ip" in p["user"] and "user_agent" in p["user"] for p in payloads)
    # 40 days pass (the retention is 30)
    con.execute(
        "update reverse_etl.tiktok_deliveries set last_attempt_at = last_attempt_at - interval 40 days, "
        "recorded_at = recorded_at - interval 40 days"
    )
    make_conversions(con, 5, NOW, start=100, replace=False)
    result = deliver(con, settings(fake))
    rows = dict(con.execute("select event_id, payload from reverse_etl.tiktok_deliveries").fetchall())
    old = [json.loads(p) for e, p in rows.items() if int(e[5:]) < 100]
    new = [json.loads(p) for e, p in rows.items() if int(e[5:]) >= 100]
    assert result.redacted == len(old) == 20
    assert all("ip" not in p["user"] and "user_agent" not in p["user"] and p["user"]["email"] for p in old)
    assert all("ip" in p["user"] for p in new), "recent events keep theirs"
