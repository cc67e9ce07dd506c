"""A deterministic, seeded world of visitors, marketing touches, lead forms and Stripe purchases.

Everything is drawn from one ``random.Random(seed)``, in a fixed order, with timestamps on a fixed calendar:
the same seed and size give byte-identical landing files.

Hard cases the world contains on purpose (each person carries flags saying which apply):
- the ad clicked on a phone and the purchase made on a laptop, linked only by an email or phone;
- emails typed with different case and stray spaces; phones in local and international formats;
- a family computer shared by two people who each identify on it;
- junk emails (``test@test.com`` and the like) typed into lead forms by many unrelated people;
- advertising consent denied;
- Stripe webhooks delivered twice, and a share of events rendered in the pre-basil API shape;
- subscription payments tied to their invoice only by an ``invoice_payment.paid`` event (basil and later), some of
  them refunded through a ``charge.refunded`` that names the PaymentIntent, not the invoice.
"""

from __future__ import annotations

import dataclasses
import random
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from simulator import ad_account
from simulator import stripe_objects as so

WORLD_DAYS = 200  # the world's calendar: visitors arrive in the first ACQUISITION_DAYS,
ACQUISITION_DAYS = 120  # subscriptions renew until the world's end (its "now")
DEFAULT_WORLD_END = date(2026, 11, 17)
SITE = "https://shop.example"

# channel name -> weight of being a person's first touch
FIRST_TOUCH_MIX = [
    ("tiktok", 36),
    ("google_ads", 14),
    ("meta", 14),
    ("organic_search", 14),
    ("referral", 8),
    ("organic_social", 6),
    ("direct", 8),
]
TIKTOK_CAMPAIGNS = ad_account.TIKTOK_CAMPAIGNS
GOOGLE_CAMPAIGNS = {"g_brand_search": ["g_ad_brand"], "g_generic_search": ["g_ad_generic_1", "g_ad_generic_2"]}
META_CAMPAIGNS = {"fb_lookalike": ["fb_ad_lal_1"], "fb_reels_prospecting": ["fb_ad_reels_1", "fb_ad_reels_2"]}
SEARCH_REFERRERS = ["https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"]
SOCIAL_REFERRERS = ["https://www.reddit.com/r/smallbusiness/", "https://www.youtube.com/", "https://t.co/"]
REFERRAL_REFERRERS = [
    "https://blog.example.org/best-tools-2026",
    "https://news.ycombinator.com/",
    "https://partner.example.net/reviews",
]
JUNK_EMAILS = ["test@test.com", "TEST@TEST.COM ", "noreply@example.com", "a@a.com", "asdf@asdf.com"]
PAGES = [
    ("/", "Shop"),
    ("/pricing", "Pricing"),
    ("/features", "Features"),
    ("/blog/why-us", "Why us"),
    ("/reviews", "Reviews"),
    ("/about", "About"),
]
FIRST_NAMES = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Felix",
    "Grace",
    "Hiro",
    "Ines",
    "Jon",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
]
LAST_NAMES = ["Smith", "Garcia", "Kim", "Nguyen", "Muller", "Rossi", "Tanaka", "Silva", "Brown", "Novak"]
EMAIL_DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "example.co"]
# country -> [(city, state or None, postal code prefix)]: where buyers live (Stripe's billing addresses)
CITIES = {
    "US": [
        ("San Francisco", "CA", "941"),
        ("Austin", "TX", "787"),
        ("New York", "NY", "100"),
        ("Chicago", "IL", "606"),
    ],
    "DE": [("Berlin", None, "10"), ("Hamburg", None, "20"), ("Köln", None, "50")],
    "JP": [("Tokyo", "Tokyo", "100"), ("Osaka", "Osaka", "530")],
    "KW": [("Kuwait City", None, "1")],
}
# country -> (currency, monthly plan price in minor units, locale, phone country code)
MARKETS = {
    "US": ("usd", 2900, "en-US", "1"),
    "DE": ("eur", 2700, "de-DE", "49"),
    "JP": ("jpy", 4200, "ja-JP", "81"),  # zero-decimal: 4200 yen
    "KW": ("kwd", 9500, "ar-KW", "965"),  # three-decimal: 9.500 dinar
}
MARKET_MIX = [("US", 72), ("DE", 14), ("JP", 9), ("KW", 5)]
ONE_OFF_PRICES = [4900, 9900, 14900, 19900]
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
LAPTOP_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
WINDOWS_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)


@dataclass
class WorldConfig:
    visitors: int = 3000
    seed: int = 7
    old_shape_share: float = 0.25  # Stripe events rendered in the pre-basil shape
    api_version: str = so.NEW_API_VERSION  # the version every other Stripe event is rendered in
    # whether the webhook endpoint is subscribed to invoice_payment.paid: without it, nothing ties a basil
    # invoice to the PaymentIntent that paid it (the pipeline must hold such payments back, not count them twice)
    invoice_payment_events: bool = True
    subscription_refund_share: float = 0.04  # subscription payments refunded (by PaymentIntent, as Stripe does)
    duplicate_delivery_share: float = 0.04  # Stripe events delivered twice
    consent_denied_share: float = 0.06
    shared_computer_share: float = 0.03  # persons living in a two-person household with one laptop
    junk_email_share: float = 0.06  # lead forms filled with a junk email
    end_date: date = DEFAULT_WORLD_END  # the world's "now": the last day anything happens


@dataclass
class Device:
    anonymous_id: str
    kind: str  # phone | laptop
    user_agent: str
    ip: str
    ttp: str | None
    ga: str
    shared: bool = False


@dataclass
class Touch:
    at: datetime
    device: Device
    channel: str
    source: str | None
    medium: str | None
    campaign: str | None
    ad: str | None
    click_id_type: str | None
    click_id: str | None
    landing_url: str
    referrer: str | None


@dataclass
class Person:
    person_id: str
    market: str
    first_name: str
    last_name: str
    email: str
    phone_e164: str
    phone_national: str
    devices: list[Device]
    consent: bool
    address: dict = field(default_factory=dict)
    hard_cases: list[str] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    # identifiers this person revealed on each device: (anonymous_id, kind, normalised value)
    revealed: list[tuple[str, str, str]] = field(default_factory=list)


class World:
    """Generates the world and accumulates the landing-zone records and ground truth."""

    def __init__(self, config: WorldConfig):
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.tracking: list[tuple[datetime, dict]] = []
        self.stripe: list[tuple[datetime, dict]] = []
        self.truth: list[dict] = []
        self.persons: list[Person] = []
        self.ad_account = ad_account.AdAccount(config.seed)
        self._n = 0
        self.world_end = datetime(config.end_date.year, config.end_date.month, config.end_date.day, tzinfo=UTC)
        self.epoch_start = self.world_end - timedelta(days=WORLD_DAYS)

    # ---- identifiers -------------------------------------------------------------------------------
    def _token(self, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def _sid(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._token(10)}{self._n:06d}"

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _weighted(self, pairs):
        names, weights = zip(*pairs, strict=False)
        return self.rng.choices(names, weights=weights, k=1)[0]

    # ---- people ------------------------------------------------------------------------------------
    def _device(self, kind: str) -> Device:
        ua = self.rng.choice([PHONE_UA, ANDROID_UA]) if kind == "phone" else self.rng.choice([LAPTOP_UA, WINDOWS_UA])
        ip = (
            f"203.0.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"
            if kind == "phone"
            else f"198.51.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"
        )
        ttp = self._token(27) if self.rng.random() < 0.85 else None  # pixel blocked on the rest
        ga = f"GA1.1.{self.rng.randint(10**8, 10**9)}.{self.rng.randint(1_700_000_000, 1_760_000_000)}"
        return Device(anonymous_id="b-" + self._uuid(), kind=kind, user_agent=ua, ip=ip, ttp=ttp, ga=ga)

    def _phone(self, market: str) -> tuple[str, str]:
        if market == "US":
            area = self.rng.choice([212, 312, 415, 512, 617, 646, 702, 808])
            exch = self.rng.randint(201, 989)
            sub = self.rng.randint(1000, 9999)
            return f"+1{area}{exch}{sub}", f"({area}) {exch}-{sub}"
        if market == "DE":
            num = f"30{self.rng.randint(1000000, 9999999)}"
            return f"+49{num}", f"0{num[:2]} {num[2:]}"
        if market == "JP":
            num = f"90{self.rng.randint(10000000, 99999999)}"
            return f"+81{num}", f"0{num[:2]}-{num[2:6]}-{num[6:]}"
        num = f"9{self.rng.randint(1000000, 9999999)}"
        return f"+965{num}", f"{num[:4]} {num[4:]}"

    def _person(self, index: int) -> Person:
        market = self._weighted(MARKET_MIX)
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        email = f"{first.lower()}.{last.lower()}{index}@{self.rng.choice(EMAIL_DOMAINS)}"
        e164, national = self._phone(market)
        two_devices = self.rng.random() < 0.55
        devices = (
            [self._device("phone"), self._device("laptop")]
            if two_devices
            else [self._device(self.rng.choice(["phone", "laptop"]))]
        )
        consent = self.rng.random() >= self.cfg.consent_denied_share
        city, state, zip_prefix = self.rng.choice(CITIES[market])
        postal = (
            zip_prefix + "".join(self.rng.choices(string.digits, k=5 - len(zip_prefix)))
            if market in ("US", "DE", "KW")
            else f"{zip_prefix}-{self.rng.randint(1000, 9999)}"
        )
        addr = so.address(
            market,
            postal_code=postal,
            city=city,
            state=state,
            line1=f"{self.rng.randint(1, 300)} {self.rng.choice(LAST_NAMES)} Street",
        )
        p = Person(
            person_id=f"p_{index:07d}",
            market=market,
            first_name=first,
            last_name=last,
            email=email,
            phone_e164=e164,
            phone_national=national,
            devices=devices,
            consent=consent,
            address=addr,
        )
        if not consent:
            p.hard_cases.append("consent_denied")
        return p

    def _typed_email(self, email: str) -> str:
        """How a person actually types their email: sometimes capitalised, sometimes with spaces."""
        r = self.rng.random()
        if r < 0.15:
            return email.capitalize()
        if r < 0.25:
            return f" {email.upper()} "
        if r < 0.32:
            return email + " "
        return email

    def _typed_phone(self, p: Person) -> str:
        """Local and international formats, as people type them into forms."""
        r = self.rng.random()
        cc = MARKETS[p.market][3]
        if p.market == "US":
            if r < 0.3:
                return p.phone_national
            if r < 0.5:
                d = p.phone_e164[2:]
                return f"{d[:3]}.{d[3:6]}.{d[6:]}"
            if r < 0.7:
                return f"+1 {p.phone_e164[2:5]} {p.phone_e164[5:8]} {p.phone_e164[8:]}"
            return p.phone_e164
        # outside the US the default region cannot be assumed: international formats only
        rest = p.phone_e164[1 + len(cc) :]
        if r < 0.5:
            return f"+{cc} {rest[:3]} {rest[3:]}"
        if r < 0.7:
            return f"00{cc}{rest}"
        return p.phone_e164

    # ---- tracking ----------------------------------------------------------------------------------
    def _context(
        self, p: Person, d: Device, url: str, referrer: str | None, path: str, title: str, campaign: dict | None
    ) -> dict:
        ctx = {
            "page": {"url": url, "referrer": referrer, "path": path, "title": title},
            "userAgent": d.user_agent,
            "ip": d.ip,
            "locale": MARKETS[p.market][2],
            "cookies": {k: v for k, v in (("_ttp", d.ttp), ("_ga", d.ga)) if v},
            "consent": {"categoryPreferences": {"advertising": p.consent}},
        }
        if campaign:
            ctx["campaign"] = campaign
        return ctx

    def _emit(
        self,
        at: datetime,
        p: Person,
        d: Device,
        kind: str,
        *,
        url: str,
        referrer: str | None,
        path: str,
        title: str,
        campaign: dict | None = None,
        event: str | None = None,
        traits: dict | None = None,
        properties: dict | None = None,
    ) -> None:
        msg = {
            "messageId": self._uuid(),
            "type": kind,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
            "anonymousId": d.anonymous_id,
            "userId": None,
            "event": event,
            "properties": properties or {},
            "traits": traits or {},
            "context": self._context(p, d, url, referrer, path, title, campaign),
        }
        self.tracking.append((at, msg))

    def _landing(self, channel: str, at: datetime) -> tuple[dict, str | None]:
        """A first page's URL parameters, the UTM context and the referrer, for one channel."""
        rng = self.rng
        if channel == "tiktok":
            campaign = rng.choice(sorted(TIKTOK_CAMPAIGNS))
            ad = rng.choice(TIKTOK_CAMPAIGNS[campaign])
            ttclid = "E.C.P." + self._token(48)
            params = {"ttclid": ttclid}
            if rng.random() < 0.9:
                params.update({"utm_source": "tiktok", "utm_medium": "paid_social"})
            # a tenth of the ads carry only the campaign and ad macros: the click id alone must say "TikTok"
            params.update({"utm_campaign": campaign, "utm_content": ad})
            # once the ads use the recommended URL template, TikTok's macros add the campaign, ad group and ad ids
            if at >= self.epoch_start + timedelta(days=ad_account.MACROS_ADOPTED_AFTER_DAYS):
                params.update(ad_account.ad_ids(campaign, ad))
            return (
                {
                    "channel": "tiktok",
                    "source": "tiktok",
                    "medium": "paid_social",
                    "campaign": campaign,
                    "ad": ad,
                    "click_id_type": "ttclid",
                    "click_id": ttclid,
                    "params": params,
                },
                "https://www.tiktok.com/",
            )
        if channel == "google_ads":
            campaign = rng.choice(sorted(GOOGLE_CAMPAIGNS))
            ad = rng.choice(GOOGLE_CAMPAIGNS[campaign])
            gclid = "Cj0KCQ" + self._token(40)
            params = {
                "gclid": gclid,
                "utm_source": "google",
                "utm_medium": "cpc",
                "utm_campaign": campaign,
                "utm_content": ad,
            }
            return (
                {
                    "channel": "google_ads",
                    "source": "google",
                    "medium": "cpc",
                    "campaign": campaign,
                    "ad": ad,
                    "click_id_type": "gclid",
                    "click_id": gclid,
                    "params": params,
                },
                "https://www.google.com/",
            )
        if channel == "meta":
            campaign = rng.choice(sorted(META_CAMPAIGNS))
            ad = rng.choice(META_CAMPAIGNS[campaign])
            fbclid = "IwAR" + self._token(40)
            params = {
                "fbclid": fbclid,
                "utm_source": "facebook",
                "utm_medium": "paid_social",
                "utm_campaign": campaign,
                "utm_content": ad,
            }
            return (
                {
                    "channel": "meta",
                    "source": "facebook",
                    "medium": "paid_social",
                    "campaign": campaign,
                    "ad": ad,
                    "click_id_type": "fbclid",
                    "click_id": fbclid,
                    "params": params,
                },
                "https://m.facebook.com/",
            )
        if channel == "email":
            params = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "weekly_digest"}
            return (
                {
                    "channel": "email",
                    "source": "newsletter",
                    "medium": "email",
                    "campaign": "weekly_digest",
                    "ad": None,
                    "click_id_type": None,
                    "click_id": None,
                    "params": params,
                },
                None,
            )
        referrer = {
            "organic_search": SEARCH_REFERRERS,
            "organic_social": SOCIAL_REFERRERS,
            "referral": REFERRAL_REFERRERS,
        }.get(channel)
        ref = rng.choice(referrer) if referrer else None
        return (
            {
                "channel": channel,
                "source": None,
                "medium": None,
                "campaign": None,
                "ad": None,
                "click_id_type": None,
                "click_id": None,
                "params": {},
            },
            ref,
        )

    def _session(self, p: Person, d: Device, start: datetime, channel: str, pages: int) -> tuple[Touch, datetime]:
        info, referrer = self._landing(channel, start)
        if info["channel"] == "tiktok":
            self.ad_account.click(start, info["ad"])
        path, title = self.rng.choice(PAGES[:3])
        query = urlencode(info["params"])
        url = f"{SITE}{path}" + (f"?{query}" if query else "")
        campaign = None
        params = info["params"]
        if "utm_source" in params:
            campaign = {
                "source": params["utm_source"],
                "medium": params.get("utm_medium"),
                "name": params.get("utm_campaign"),
            }
            if "utm_content" in params:
                campaign["content"] = params["utm_content"]
        self._emit(
            start,
            p,
            d,
            "page",
            url=url,
            referrer=referrer,
            path=path,
            title=title,
            campaign=campaign,
            properties={"url": url, "path": path, "title": title, "referrer": referrer},
        )
        touch = Touch(
            at=start,
            device=d,
            channel=info["channel"],
            source=info["source"],
            medium=info["medium"],
            campaign=info["campaign"],
            ad=info["ad"],
            click_id_type=info["click_id_type"],
            click_id=info["click_id"],
            landing_url=url,
            referrer=referrer,
        )
        at = start
        prev = url
        for _ in range(pages - 1):
            at = at + timedelta(seconds=self.rng.randint(8, 240), milliseconds=self.rng.randint(0, 999))
            path, title = self.rng.choice(PAGES)
            nxt = f"{SITE}{path}"
            self._emit(
                at,
                p,
                d,
                "page",
                url=nxt,
                referrer=prev,
                path=path,
                title=title,
                properties={"url": nxt, "path": path, "title": title, "referrer": prev},
            )
            prev = nxt
        return touch, at

    def _lead(self, p: Person, d: Device, at: datetime, junk: bool) -> None:
        email = self.rng.choice(JUNK_EMAILS) if junk else self._typed_email(p.email)
        with_phone = self.rng.random() < 0.7
        phone = self._typed_phone(p) if with_phone else None
        traits = {"email": email, "firstName": p.first_name, "lastName": p.last_name}
        if phone:
            traits["phone"] = phone
        url = f"{SITE}/pricing"
        self._emit(at, p, d, "identify", url=url, referrer=None, path="/pricing", title="Pricing", traits=traits)
        self._emit(
            at + timedelta(milliseconds=40),
            p,
            d,
            "track",
            url=url,
            referrer=None,
            path="/pricing",
            title="Pricing",
            event="Lead",
            traits=traits,
            properties={"form_id": "pricing_newsletter"},
        )
        if not junk:
            p.revealed.append((d.anonymous_id, "email", p.email))
        else:
            p.hard_cases.append("junk_email")
        if phone:
            p.revealed.append((d.anonymous_id, "phone", p.phone_e164))

    # ---- Stripe ------------------------------------------------------------------------------------
    def _stripe_event(self, at: datetime, event_type: str, render, delivered: bool = True, **fields) -> None:
        """One event whose object is ``render(**fields, api_version=...)`` in the API version drawn for it. An event
        the endpoint is not subscribed to (``delivered`` false) draws the same numbers, so the rest of the world
        is the same either way."""
        version = so.OLD_API_VERSION if self.rng.random() < self.cfg.old_shape_share else self.cfg.api_version
        ev = so.event(self._sid("evt"), event_type, int(at.timestamp()), render(**fields, api_version=version), version)
        copies = [(at, ev)]
        if self.rng.random() < self.cfg.duplicate_delivery_share:
            # Stripe retried the webhook: the same event lands again, minutes to hours later
            copies.append((at + timedelta(minutes=self.rng.randint(1, 600)), ev))
        if delivered:
            self.stripe += copies

    def _purchase(
        self, p: Person, d: Device, at: datetime, first_touch: Touch, use_crid: bool, checkout_phone: bool
    ) -> None:
        currency, plan_price, _, _ = MARKETS[p.market]
        name = f"{p.first_name} {p.last_name}"
        phone = p.phone_e164 if checkout_phone else None
        typed = self._typed_email(p.email)
        stripe_email = typed.strip()  # Stripe trims, but keeps the case the customer typed
        kind = self._weighted([("subscription", 55), ("one_off", 30), ("payment_intent", 15)])
        # only Checkout carries client_reference_id; a bare PaymentIntent has no place for the browser id
        crid = d.anonymous_id if use_crid and kind != "payment_intent" else None
        if crid:
            p.revealed.append((crid, "client_reference_id", crid))
        ts = lambda t: int(t.timestamp())  # noqa: E731
        cus_id = None
        if kind in ("subscription", "payment_intent") or self.rng.random() < 0.5:
            cus_id = self._sid("cus")
            self._stripe_event(
                at,
                "customer.created",
                so.customer,
                cus_id=cus_id,
                created=ts(at),
                email=stripe_email,
                name=name,
                phone=phone,
                country=p.market,
                addr=p.address,
            )
        truth_base = {
            "person_id": p.person_id,
            "stripe_customer_id": cus_id,
            "currency": currency.upper(),
            "hard_cases": sorted(set(p.hard_cases)),
            "consent": p.consent,
        }
        purchases = []
        if kind == "subscription":
            sub_id, si_id = self._sid("sub"), self._sid("si")
            price_id, product_id = f"price_pro_monthly_{currency}", "prod_pro"
            cancel_after = None
            month = 0
            t = at
            cs_id = "cs_test_" + self._token(50)
            while t < self.world_end:
                in_id, pi_id, ch_id = self._sid("in"), self._sid("pi"), self._sid("ch")
                reason = "subscription_create" if month == 0 else "subscription_cycle"
                period_end = t + timedelta(days=30)
                t_in = t + timedelta(seconds=3)
                inv_args = dict(
                    in_id=in_id,
                    created=ts(t_in),
                    cus_id=cus_id,
                    email=stripe_email,
                    name=name,
                    phone=phone,
                    country=p.market,
                    amount_minor=plan_price,
                    currency=currency,
                    billing_reason=reason,
                    subscription_id=sub_id,
                    sub_item_id=si_id,
                    line_id=self._sid("il"),
                    price_id=price_id,
                    product_id=product_id,
                    product_name="Pro plan",
                    period_start=ts(t),
                    period_end=ts(period_end),
                    pi_id=pi_id,
                    charge_id=ch_id,
                    addr=p.address,
                )
                self._stripe_event(
                    t_in,
                    "payment_intent.succeeded",
                    so.payment_intent,
                    pi_id=pi_id,
                    created=ts(t_in),
                    amount_minor=plan_price,
                    currency=currency,
                    cus_id=cus_id,
                    receipt_email=None,
                    charge_id=ch_id,
                    invoice_id=in_id,
                    description="Subscription creation" if month == 0 else "Subscription update",
                )
                self._stripe_event(
                    t_in,
                    "charge.succeeded",
                    so.charge,
                    ch_id=ch_id,
                    created=ts(t_in),
                    amount_minor=plan_price,
                    currency=currency,
                    cus_id=cus_id,
                    pi_id=pi_id,
                    email=stripe_email,
                    name=name,
                    phone=phone,
                    country=p.market,
                    invoice_id=in_id,
                    refunded_minor=0,
                    addr=p.address,
                )
                self._stripe_event(t_in + timedelta(seconds=2), "invoice.paid", so.invoice, **inv_args)
                self._stripe_event(
                    t_in + timedelta(seconds=2),
                    "invoice_payment.paid",
                    so.invoice_payment,
                    delivered=self.cfg.invoice_payment_events,
                    inpay_id="inpay_" + in_id[3:],
                    created=ts(t_in),
                    in_id=in_id,
                    amount_minor=plan_price,
                    currency=currency,
                    pi_id=pi_id,
                    paid_at=ts(t_in + timedelta(seconds=2)),
                )
                sub_refunded = 0
                t_ref = t_in + timedelta(days=self.rng.randint(1, 10))
                if self.rng.random() < self.cfg.subscription_refund_share and t_ref < self.world_end:
                    # refunded as Stripe records it: the charge and the refund name the PaymentIntent, not the invoice
                    sub_refunded = plan_price
                    self._refund(
                        t_ref,
                        ch_id=ch_id,
                        t_pay=t_in,
                        amount=plan_price,
                        refunded=sub_refunded,
                        currency=currency,
                        cus_id=cus_id,
                        pi_id=pi_id,
                        email=stripe_email,
                        name=name,
                        phone=phone,
                        p=p,
                        invoice_id=in_id,
                    )
                if month == 0:
                    self._stripe_event(
                        t + timedelta(seconds=6),
                        "checkout.session.completed",
                        so.checkout_session,
                        cs_id=cs_id,
                        created=ts(t),
                        mode="subscription",
                        amount_minor=plan_price,
                        currency=currency,
                        cus_id=cus_id,
                        email=stripe_email,
                        typed_email=typed,
                        name=name,
                        phone=phone,
                        country=p.market,
                        client_reference_id=crid,
                        invoice_id=in_id,
                        subscription_id=sub_id,
                        payment_intent_id=None,
                        addr=p.address,
                    )
                    self._stripe_event(
                        t + timedelta(seconds=4),
                        "customer.subscription.created",
                        so.subscription,
                        sub_id=sub_id,
                        created=ts(t),
                        cus_id=cus_id,
                        sub_item_id=si_id,
                        price_id=price_id,
                        product_id=product_id,
                        amount_minor=plan_price,
                        currency=currency,
                        status="active",
                        canceled_at=None,
                    )
                purchases.append(
                    {
                        "purchase_id": in_id,
                        # the event id the pipeline sends it under: a first invoice's Checkout Session's id
                        "tiktok_event_id": cs_id if month == 0 else in_id,
                        "purchased_at": t_in + timedelta(seconds=2),
                        "amount_minor": plan_price,
                        "is_renewal": month > 0,
                        "kind": "invoice",
                        "refunded_minor": sub_refunded,
                    }
                )
                month += 1
                if self.rng.random() < 0.18:
                    cancel_after = period_end - timedelta(days=self.rng.randint(1, 20))
                    break
                t = period_end
            if cancel_after is not None and cancel_after < self.world_end:
                self._stripe_event(
                    cancel_after,
                    "customer.subscription.deleted",
                    so.subscription,
                    sub_id=sub_id,
                    created=ts(at),
                    cus_id=cus_id,
                    sub_item_id=si_id,
                    price_id=price_id,
                    product_id=product_id,
                    amount_minor=plan_price,
                    currency=currency,
                    status="canceled",
                    canceled_at=ts(cancel_after),
                )
        else:
            amount = self.rng.choice(ONE_OFF_PRICES)
            if currency == "jpy":
                amount = amount * 1  # a 4,900 yen item: zero-decimal amounts are whole yen
            elif currency == "kwd":
                amount = amount * 3  # 14.700 dinar and so on
            pi_id, ch_id = self._sid("pi"), self._sid("ch")
            t_pay = at + timedelta(seconds=3)
            receipt = stripe_email if kind == "payment_intent" else None
            self._stripe_event(
                t_pay,
                "payment_intent.succeeded",
                so.payment_intent,
                pi_id=pi_id,
                created=ts(t_pay),
                amount_minor=amount,
                currency=currency,
                cus_id=cus_id,
                receipt_email=receipt,
                charge_id=ch_id,
                invoice_id=None,
                description=None,
            )
            self._stripe_event(
                t_pay,
                "charge.succeeded",
                so.charge,
                ch_id=ch_id,
                created=ts(t_pay),
                amount_minor=amount,
                currency=currency,
                cus_id=cus_id,
                pi_id=pi_id,
                email=stripe_email,
                name=name,
                phone=phone,
                country=p.market,
                invoice_id=None,
                refunded_minor=0,
                addr=p.address,
            )
            if kind == "one_off":
                cs_id = "cs_test_" + self._token(50)
                self._stripe_event(
                    t_pay + timedelta(seconds=2),
                    "checkout.session.completed",
                    so.checkout_session,
                    cs_id=cs_id,
                    created=ts(at),
                    mode="payment",
                    amount_minor=amount,
                    currency=currency,
                    cus_id=cus_id,
                    email=stripe_email,
                    typed_email=typed,
                    name=name,
                    phone=phone,
                    country=p.market,
                    client_reference_id=crid,
                    invoice_id=None,
                    subscription_id=None,
                    payment_intent_id=pi_id,
                    addr=p.address,
                )
                purchase_id = cs_id
            else:
                purchase_id = pi_id
            refunded = 0
            if self.rng.random() < 0.08:
                refunded = amount if self.rng.random() < 0.6 else amount // 2
                self._refund(
                    t_pay + timedelta(days=self.rng.randint(1, 14)),
                    ch_id=ch_id,
                    t_pay=t_pay,
                    amount=amount,
                    refunded=refunded,
                    currency=currency,
                    cus_id=cus_id,
                    pi_id=pi_id,
                    email=stripe_email,
                    name=name,
                    phone=phone,
                    p=p,
                    invoice_id=None,
                )
            purchases.append(
                {
                    "purchase_id": purchase_id,
                    "tiktok_event_id": purchase_id,
                    "purchased_at": t_pay,
                    "amount_minor": amount,
                    "is_renewal": False,
                    "kind": kind,
                    "refunded_minor": refunded,
                }
            )
        link = self._link(p, first_touch, crid, stripe_has_phone=phone is not None)
        for pur in purchases:
            self.truth.append(
                {
                    **truth_base,
                    **pur,
                    "purchased_at": pur["purchased_at"].isoformat(),
                    "checkout_device": d.kind,
                    "client_reference_id": crid,
                    "first_touch": _touch_dict(first_touch),
                    "link": link,
                }
            )

    def _refund(
        self,
        t_ref: datetime,
        *,
        ch_id: str,
        t_pay: datetime,
        amount: int,
        refunded: int,
        currency: str,
        cus_id: str | None,
        pi_id: str,
        email: str,
        name: str,
        phone: str | None,
        p: Person,
        invoice_id: str | None,
    ) -> None:
        """A refund as Stripe sends it: ``refund.created`` with the refund, and ``charge.refunded`` with the charge's
        new ``amount_refunded`` (its ``refunds`` list is includable, so not in the payload)."""
        ts = lambda t: int(t.timestamp())  # noqa: E731
        self._stripe_event(
            t_ref,
            "refund.created",
            so.refund,
            re_id=self._sid("re"),
            created=ts(t_ref),
            amount_minor=refunded,
            currency=currency,
            ch_id=ch_id,
            pi_id=pi_id,
        )
        self._stripe_event(
            t_ref,
            "charge.refunded",
            so.charge,
            ch_id=ch_id,
            created=ts(t_pay),
            amount_minor=amount,
            currency=currency,
            cus_id=cus_id,
            pi_id=pi_id,
            email=email,
            name=name,
            phone=phone,
            country=p.market,
            invoice_id=invoice_id,
            refunded_minor=refunded,
            addr=p.address,
        )

    def _link(self, p: Person, first_touch: Touch, crid: str | None, stripe_has_phone: bool) -> str | None:
        """Which observed link connects the first-touch browser to the purchase, or None.

        A reference union-find over what the world revealed, leaving out junk emails and shared computers.
        """
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a: str, b: str) -> None:
            parent[find(a)] = find(b)

        shared = {d.anonymous_id for d in p.devices if d.shared}
        purchase = "stripe"
        union(purchase, "email")  # Stripe always has the customer's email
        if stripe_has_phone:
            union(purchase, "phone")
        if crid and crid not in shared:
            union(purchase, crid)
        for anon, kind, _ in p.revealed:
            if anon not in shared:
                union(anon, kind)
        ft = first_touch.device.anonymous_id
        if ft in shared or find(ft) != find(purchase):
            return None
        if crid == ft:
            return "client_reference_id"
        kinds = {k for a, k, _ in p.revealed if a == ft}
        if "email" in kinds:
            return "email"
        if "phone" in kinds:
            return "phone"
        return "transitive"

    # ---- the whole world ---------------------------------------------------------------------------
    def _households(self) -> None:
        """Pairs of people who share one family laptop (and each has a phone of their own)."""
        n = len(self.persons)
        k = int(n * self.cfg.shared_computer_share) // 2
        idx = self.rng.sample(range(n), 2 * k) if k else []
        for a, b in zip(idx[0::2], idx[1::2], strict=False):
            laptop = self._device("laptop")
            laptop.shared = True
            for i in (a, b):
                p = self.persons[i]
                p.devices = [d for d in p.devices if d.kind == "phone"] or [self._device("phone")]
                p.devices.append(laptop)
                p.hard_cases.append("shared_computer")

    def _live(self, p: Person) -> None:
        rng = self.rng
        start = self.epoch_start + timedelta(days=rng.uniform(0, ACQUISITION_DAYS))
        channel = self._weighted(FIRST_TOUCH_MIX)
        phone = next((d for d in p.devices if d.kind == "phone"), None)
        laptop = next((d for d in p.devices if d.kind == "laptop"), None)
        mobile_first = channel in ("tiktok", "meta", "organic_social")
        if mobile_first and phone:
            first_device = phone
        elif phone and laptop:
            first_device = phone if rng.random() < 0.4 else laptop
        else:
            first_device = p.devices[0]
        if first_device.shared and phone:
            first_device = phone
        first_touch, t = self._session(p, first_device, start, channel, rng.randint(1, 4))
        p.touches.append(first_touch)
        converts = rng.random() < {"tiktok": 0.3, "google_ads": 0.32, "meta": 0.25}.get(channel, 0.22)
        lead = rng.random() < (0.6 if converts else 0.3)
        if lead:
            junk = rng.random() < self.cfg.junk_email_share
            self._lead(p, first_device, t + timedelta(seconds=rng.randint(5, 90)), junk)
        for d in p.devices:
            if d.shared:
                # everyone in the household signs in on the family laptop with their own email
                self._emit(
                    t + timedelta(days=rng.uniform(0.1, 3)),
                    p,
                    d,
                    "identify",
                    url=f"{SITE}/account",
                    referrer=None,
                    path="/account",
                    title="Account",
                    traits={"email": self._typed_email(p.email)},
                )
                p.revealed.append((d.anonymous_id, "email", p.email))
        for _ in range(rng.randint(0, 3)):
            t = t + timedelta(days=rng.uniform(0.2, 12))
            d = rng.choice(p.devices)
            ret = self._weighted(
                [
                    ("direct", 50),
                    ("organic_search", 20),
                    ("email", 12),
                    (channel if channel in ("tiktok", "google_ads", "meta") else "direct", 10),
                    ("google_ads", 8),
                ]
            )
            touch, t = self._session(p, d, t, ret, rng.randint(1, 3))
            p.touches.append(touch)
        if not converts:
            return
        t = t + timedelta(days=rng.uniform(0, 10))
        if t >= self.world_end - timedelta(days=2):
            return
        # cross-device: most two-device people who clicked on the phone buy on the laptop
        d = laptop if laptop and rng.random() < 0.7 else first_device
        touch, t = self._session(p, d, t, "direct", rng.randint(1, 2))
        p.touches.append(touch)
        if d is not first_device:
            p.hard_cases.append("cross_device")
        bought_at = t + timedelta(seconds=rng.randint(30, 600))
        n_truth = len(self.truth)
        self._purchase(p, d, bought_at, first_touch, rng.random() < 0.6, checkout_phone=rng.random() < 0.5)
        if len(self.truth) > n_truth:  # what TikTok's pixel saw of it, for the ad account's own reporting
            first = self.truth[n_truth]
            self.ad_account.purchase(
                p.person_id, p.consent, p.touches, d, bought_at, first["amount_minor"], first["currency"]
            )
        if d.anonymous_id != first_device.anonymous_id:
            # the thank-you page identifies the buyer on the browser they bought on
            self._emit(
                t + timedelta(seconds=700),
                p,
                d,
                "identify",
                url=f"{SITE}/thanks",
                referrer=None,
                path="/thanks",
                title="Thank you",
                traits={"email": self._typed_email(p.email)},
            )

    def generate(self) -> World:
        for _ in self.lives():
            pass
        return self

    def lives(self, chunk: int | None = None):
        """Generate the world, yielding after every ``chunk`` persons have lived (None: once, at the end). A consumer
        that takes ``tracking``, ``stripe`` and ``truth`` and empties them each time holds one chunk's records at a
        time (simulator/cli.py writes them as they come); the records are the same, in the same order, either way."""
        self.persons = [self._person(i) for i in range(1, self.cfg.visitors + 1)]
        self._households()
        for n, p in enumerate(self.persons, 1):
            self._live(p)
            if chunk and n % chunk == 0:
                for done in self.persons[n - chunk : n]:
                    done.touches, done.revealed = [], []  # written with the truth; nothing reads them again
                yield self
        if not chunk or len(self.persons) % chunk:
            yield self


def _touch_dict(t: Touch) -> dict:
    d = {f.name: getattr(t, f.name) for f in dataclasses.fields(t) if f.name != "device"}
    d["at"] = t.at.isoformat()
    d["anonymous_id"] = t.device.anonymous_id
    d["device"] = t.device.kind
    return d
