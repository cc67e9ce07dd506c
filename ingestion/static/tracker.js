/*! ttattr tracker: first-party page views, click ids, UTMs, _ttp, lead forms -> your own collector.
 * No dependencies. Configure before loading:
 *   window.ttattrConfig = {
 *     endpoint: "https://collect.example.com",   // the collector (default: where this script came from)
 *     writeKey: "wk_...",                          // one of COLLECTOR_WRITE_KEYS
 *     cookieDomain: ".example.com",               // share the browser id across subdomains (default: this host)
 *     useGaClientId: false,                        // true: the browser id is GA's client id ("123_456" for _ga's "123.456")
 *     advertisingConsent: undefined,               // true / false from your consent banner; undefined: unknown
 *     leadForms: "form",                           // forms whose submission is a lead (those with an email or phone)
 *     emailField: "input[type=email], input[name*=email i], input[id*=email i]",
 *     phoneField: "input[type=tel], input[name*=phone i], input[id*=phone i]",
 *     leadEvent: "Lead",                           // a form may say data-ttattr-event="Sign Up" instead
 *     decorateStripeLinks: true,                   // adds client_reference_id to buy.stripe.com links
 *     checkoutSessionParam: "session_id",          // the success URL's parameter for {CHECKOUT_SESSION_ID}
 *     tiktokPurchaseEvent: "Purchase",             // the event name the server sends (dbt var tiktok_event_name)
 *     autoPage: true                               // send a page view on load
 *   };
 * API: ttattr.page(), ttattr.identify(userId?, traits?), ttattr.track(event, properties?),
 *      ttattr.setConsent({advertising: bool}), ttattr.browserId(), ttattr.checkoutReferenceId(),
 *      ttattr.decorateLinks(selector?), ttattr.flush(),
 *      ttattr.tiktokPurchase({value, currency, contents?}) on Checkout's success page, after TikTok's pixel code.
 */
(function (window, document) {
  "use strict";
  if (window.ttattr && window.ttattr.version) return;

  var VERSION = "1.1.0";
  var ID_COOKIE = "_ttattr_id";
  var TOUCH_KEY = "_ttattr_touch";
  var CLICK_IDS = ["ttclid", "gclid", "gbraid", "wbraid", "fbclid", "msclkid", "li_fat_id", "twclid", "dclid"];
  var UTMS = { utm_source: "source", utm_medium: "medium", utm_campaign: "name", utm_content: "content",
               utm_term: "term", utm_id: "id" };
  var TWO_YEARS = 730 * 24 * 3600;
  var script = document.currentScript;
  var cfg = window.ttattrConfig || {};
  var endpoint = (cfg.endpoint || (script && script.src ? new URL(script.src).origin : "")).replace(/\/+$/, "");
  var queue = [];
  var scheduled = false;
  var consent = cfg.advertisingConsent;
  var userId = null;

  // ---- cookies and storage --------------------------------------------------------------------------------
  function getCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) {
        try { return decodeURIComponent(parts[i].slice(eq + 1)); } catch (e) { return parts[i].slice(eq + 1); }
      }
    }
    return null;
  }
  function setCookie(name, value, maxAge) {
    var c = name + "=" + encodeURIComponent(value) + "; Max-Age=" + maxAge + "; Path=/; SameSite=Lax";
    if (cfg.cookieDomain) c += "; Domain=" + cfg.cookieDomain;
    if (location.protocol === "https:") c += "; Secure";
    document.cookie = c;
  }
  function store(key, value) {
    try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode */ }
    setCookie(key, JSON.stringify(value), TWO_YEARS);  // also a cookie: shared across subdomains
  }
  function load(key) {
    var raw = null;
    try { raw = window.localStorage.getItem(key); } catch (e) { /* private mode */ }
    raw = raw || getCookie(key);
    if (!raw) return null;
    try { return JSON.parse(raw); } catch (e) { return null; }
  }
  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var b = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // ---- the browser id -------------------------------------------------------------------------------------
  function gaClientId() {
    // GA1.1.123456789.1700000000 -> 123456789_1700000000: GA's client id, with "_" for "." because Stripe's
    // client_reference_id takes only letters, digits, "-" and "_"
    var ga = getCookie("_ga");
    var m = ga && ga.match(/^GA\d\.\d+\.(\d+)\.(\d+)$/);
    return m ? m[1] + "_" + m[2] : null;
  }
  function browserId() {
    var id = (cfg.useGaClientId && gaClientId()) || getCookie(ID_COOKIE);
    if (!id) id = uuid();
    setCookie(ID_COOKIE, id, TWO_YEARS);  // refreshed on every visit
    return id;
  }
  var anonymousId = browserId();

  // ---- the marketing touch: click ids and UTMs from the landing URL, kept for later pages ------------------
  function readTouch() {
    var params = new URLSearchParams(location.search);
    var clickIds = {}, campaign = {}, found = false;
    CLICK_IDS.forEach(function (k) { var v = params.get(k); if (v) { clickIds[k] = v; found = true; } });
    Object.keys(UTMS).forEach(function (k) { var v = params.get(k); if (v) { campaign[UTMS[k]] = v; found = true; } });
    if (found) {
      var touch = { clickIds: clickIds, campaign: campaign, landingUrl: location.href,
                    referrer: document.referrer || null, landedAt: new Date().toISOString() };
      store(TOUCH_KEY, touch);
      return { current: campaign, touch: touch };
    }
    return { current: null, touch: load(TOUCH_KEY) };
  }
  var touch = readTouch();

  // ---- events ---------------------------------------------------------------------------------------------
  function context() {
    var ctx = {
      library: { name: "ttattr.js", version: VERSION },
      page: { url: location.href, path: location.pathname, search: location.search,
              referrer: document.referrer || "", title: document.title },
      userAgent: navigator.userAgent,
      locale: navigator.language || null,
      timezone: (window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone) || null,
      screen: { width: window.screen.width, height: window.screen.height },
      cookies: {}
    };
    ["_ttp", "_ga", "_fbp", "_fbc"].forEach(function (name) {
      var v = getCookie(name);
      if (v) ctx.cookies[name] = v;
    });
    // Segment's context.campaign is this page's own UTMs; the remembered touch rides along separately
    if (touch.current) ctx.campaign = touch.current;
    if (touch.touch) ctx.attribution = touch.touch;
    if (consent === true || consent === false) {
      ctx.consent = { categoryPreferences: { advertising: consent } };
    }
    return ctx;
  }
  function enqueue(type, fields) {
    var msg = { type: type, messageId: uuid(), timestamp: new Date().toISOString(), anonymousId: anonymousId,
                context: context() };
    if (userId) msg.userId = userId;
    for (var k in fields) if (Object.prototype.hasOwnProperty.call(fields, k)) msg[k] = fields[k];
    queue.push(msg);
    if (!scheduled) { scheduled = true; setTimeout(flush, 0); }
    return msg.messageId;
  }
  function flush() {
    scheduled = false;
    if (!queue.length) return;
    var body = JSON.stringify({ batch: queue.splice(0, queue.length), sentAt: new Date().toISOString(),
                                writeKey: cfg.writeKey });
    var url = endpoint + "/v1/batch";
    // text/plain keeps sendBeacon and fetch free of a CORS preflight; the collector reads it as JSON
    try {
      if (navigator.sendBeacon && body.length < 60000 &&
          navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }))) return;
    } catch (e) { /* fall through */ }
    if (window.fetch) {
      window.fetch(url, { method: "POST", body: body, keepalive: body.length < 60000, credentials: "omit",
                          headers: { "Content-Type": "text/plain" } }).catch(function () {});
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url, true);
    xhr.setRequestHeader("Content-Type", "text/plain");
    xhr.send(body);
  }

  function page(properties) {
    return enqueue("page", { name: document.title, properties: properties || {} });
  }
  function identify(id, traits) {
    if (id && typeof id === "object") { traits = id; id = null; }
    if (id) userId = String(id);
    return enqueue("identify", { traits: traits || {} });
  }
  function track(event, properties, traits) {
    var fields = { event: event, properties: properties || {} };
    if (traits) fields.traits = traits;
    return enqueue("track", fields);
  }

  // ---- lead and sign-up forms -------------------------------------------------------------------------------
  function fieldValue(form, selector) {
    var el = form.querySelector(selector);
    return el && el.value ? String(el.value).trim() : null;
  }
  function onSubmit(e) {
    var form = e.target;
    if (!form || form.tagName !== "FORM" || !form.matches(cfg.leadForms || "form")) return;
    if (form.hasAttribute("data-ttattr-ignore")) return;
    var email = fieldValue(form, cfg.emailField ||
      "input[type=email], input[name*=email i], input[id*=email i]");
    var phone = fieldValue(form, cfg.phoneField ||
      "input[type=tel], input[name*=phone i], input[id*=phone i]");
    if (!email && !phone) return;
    var traits = {};
    if (email) traits.email = email;
    if (phone) traits.phone = phone;
    identify(traits);
    track(form.getAttribute("data-ttattr-event") || cfg.leadEvent || "Lead",
          { form_id: form.id || null, form_action: form.getAttribute("action") || null }, traits);
    flush();  // the page is about to unload: send now, by beacon
  }
  document.addEventListener("submit", onSubmit, true);

  // ---- Stripe: the browser id as Checkout's client_reference_id ---------------------------------------------
  function decorateLinks(selector) {
    var links = document.querySelectorAll(selector || 'a[href*="buy.stripe.com"]');
    Array.prototype.forEach.call(links, function (a) {
      try {
        var u = new URL(a.href);
        if (!u.searchParams.get("client_reference_id")) {
          u.searchParams.set("client_reference_id", anonymousId);
          a.href = u.toString();
        }
      } catch (e) { /* not a URL */ }
    });
  }

  // ---- TikTok's pixel on Checkout's success page: the event id the server sends ----------------------------
  // The server sends a purchase made through Stripe Checkout under its Checkout Session's id, which Stripe puts
  // in the success URL ({CHECKOUT_SESSION_ID}). The pixel's Purchase fired with the same event name and event_id
  // is one event to TikTok (pixel + event + event_id), whichever arrives first, and a reload of the page is too.
  var CHECKOUT_SESSION_ID = /^cs_(test|live)_[A-Za-z0-9]{1,250}$/;
  function tiktokPurchase(options) {
    options = options || {};
    var sessionId = options.checkoutSessionId ||
      new URLSearchParams(location.search).get(cfg.checkoutSessionParam || "session_id");
    // anything else in the URL is not an id the server will send: firing under it would count the purchase twice
    if (!sessionId || !CHECKOUT_SESSION_ID.test(sessionId)) return null;
    if (consent === false) return null;  // advertising denied: the pixel gets nothing from us either
    var ttq = window.ttq;
    if (!ttq || typeof ttq.track !== "function") return null;
    var properties = {};
    var value = Number(options.value);
    if (options.value != null && isFinite(value)) properties.value = value;
    if (options.currency) properties.currency = String(options.currency).toUpperCase();
    if (options.contents) properties.contents = options.contents;
    try {
      ttq.track(cfg.tiktokPurchaseEvent || "Purchase", properties, { event_id: sessionId });
    } catch (e) { return null; }  // the pixel must never break the page
    return sessionId;
  }

  function setConsent(c) {
    if (c && (c.advertising === true || c.advertising === false)) consent = c.advertising;
  }

  window.ttattr = {
    version: VERSION, page: page, identify: identify, track: track, flush: flush, setConsent: setConsent,
    browserId: function () { return anonymousId; },
    // Stripe Checkout: pass as client_reference_id when creating the session (letters, digits, - and _ only)
    checkoutReferenceId: function () { return anonymousId; },
    decorateLinks: decorateLinks,
    tiktokPurchase: tiktokPurchase
  };
  window.addEventListener("pagehide", flush);
  if (cfg.decorateStripeLinks !== false) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { decorateLinks(); });
    else decorateLinks();
  }
  if (cfg.autoPage !== false) page();
})(window, document);
