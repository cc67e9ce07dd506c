"""The product running by itself, as a deployment runs it: the collector and the Stripe webhook receiver as their own
processes, the Dagster daemon with its sensors, a fake TikTok Events API. A shopper clicks a TikTok ad, fills the
lead form and buys through Stripe; nobody starts a run, and the purchase arrives at TikTok once, with their match
keys."""

import time

import httpx

from fakes.tiktok import FakeTikTok
from reverse_etl.hashing import sha256_hex
from simulator.live import LiveShop, running_product

TOKEN, PIXEL = "live-token", "LIVEPIXEL"


def _arrived(fake: FakeTikTok, event_ids: list[str], deadline: float) -> bool:
    while time.time() < deadline:
        if all(i in fake.accepted_at for i in event_ids):
            return True
        time.sleep(0.2)
    return False


def test_a_purchase_reaches_tiktok_through_the_services_and_the_sensors_without_a_manual_run(tmp_path):
    fake = FakeTikTok(access_tokens=[TOKEN], pixel_codes=[PIXEL]).start()
    shop = LiveShop(seed=11)
    try:
        with (
            running_product(tmp_path, tiktok_url=fake.url, access_token=TOKEN, pixel_code=PIXEL) as product,
            httpx.Client(timeout=10) as client,
        ):
            shoppers = [shop.shopper(), shop.shopper()]
            product.send(shoppers[0], client)
            first_ids = shoppers[0].purchase_ids
            # the first run builds the whole (empty) warehouse: minutes are the generous bound of a slow machine
            assert _arrived(fake, first_ids, time.time() + 300), (
                f"the purchase did not reach TikTok; see {product.logs}"
            )
            # a second purchase while the daemon keeps running: its own run carries it
            product.send(shoppers[1], client)
            assert _arrived(fake, shoppers[1].purchase_ids, time.time() + 300), (
                f"the second purchase did not reach TikTok; see {product.logs}"
            )
        accepted = fake.accepted_ids()
        for shopper in shoppers:
            for event_id in shopper.purchase_ids:
                assert accepted[event_id] == 1, "sent exactly once"
                user = fake.accepted_events[event_id]["user"]
                assert sha256_hex(shopper.email.lower()) in (user.get("email") or []), "the buyer's email, hashed"
                assert user.get("ttclid"), "the TikTok click their browser came from"
    finally:
        fake.stop()
