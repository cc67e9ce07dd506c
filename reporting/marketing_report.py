"""The marketing report: one self-contained HTML file of the questions marketers ask, read from the analysts' copy.

Charts are SVG drawn here, at build time: the file loads nothing (its Content-Security-Policy forbids any fetch and
any script), so it opens from a mail attachment, a shared drive or an air-gapped laptop exactly as it was built.
Every text in it comes from data (campaign and ad names are typed by marketers, and utm_campaign by anyone who can
craft a link), so every text is escaped.

It reads the published copy (ANALYTICS_PATH), never the warehouse: building it never holds up a run or a delivery.
"""

from __future__ import annotations

import html
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

PALETTE = ("#2f6fde", "#e8553d", "#2aa876", "#f2a541", "#8e5ad8", "#1aa3b8", "#d6457f", "#7a8a99", "#b58b00", "#555")
STATUS_COLOURS = {
    "sent": "#2aa876",
    "dry_run": "#7a8a99",
    "no_consent": "#b58b00",
    "failed_retryable": "#f2a541",
    "failed_permanent": "#e8553d",
    "expired": "#8e5ad8",
}
KEY_LABELS = {
    "has_ttclid": "TikTok click id (ttclid)",
    "has_ttp": "TikTok cookie (_ttp)",
    "has_email": "email",
    "has_phone": "phone",
    "has_name": "name",
    "has_address": "address",
    "any_key": "any key TikTok matches on",
}
DELIVERY_DAYS = 60


@dataclass
class ReportResult:
    path: Path
    charts: int = 0
    marks: int = 0
    seconds: float = 0.0
    sections_without_data: list[str] = field(default_factory=list)


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _money(v: float | None, currency: str) -> str:
    return "–" if v is None else f"{v:,.2f} {currency}"


def _ratio(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


def _share(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of a query, or none when a relation it reads is not in the copy yet (nothing built so far)."""
    try:
        return con.execute(sql, params or []).fetchall()
    except duckdb.CatalogException:
        return []


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** (len(str(int(v))) - 1) if v >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * exp:
            return step * exp
    return 10 * exp


class _Chart:
    """One SVG chart; every mark carries its series, label and value (data-*) and a tooltip."""

    def __init__(self, title: str, width: int = 860, height: int = 300):
        self.title, self.width, self.height = title, width, height
        self.parts: list[str] = []
        self.marks = 0

    def mark(self, x, y, w, h, colour, series, label, value, shown) -> None:
        self.marks += 1
        self.parts.append(
            f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'fill="{colour}" data-series="{_e(series)}" data-label="{_e(label)}" data-value="{value:.6g}">'
            f"<title>{_e(series)} · {_e(label)}: {_e(shown)}</title></rect>"
        )

    def text(self, x, y, s, anchor="start", size=11, colour="#333", rotate=None) -> None:
        transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{colour}" text-anchor="{anchor}"{transform}>'
            f"{_e(s)}</text>"
        )

    def line(self, x1, y1, x2, y2, colour="#ddd") -> None:
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}"/>')

    def svg(self) -> str:
        return (
            f'<svg class="chart" role="img" aria-label="{_e(self.title)}" viewBox="0 0 {self.width} {self.height}" '
            f'width="100%" data-marks="{self.marks}" xmlns="http://www.w3.org/2000/svg">'
            + "".join(self.parts)
            + "</svg>"
        )


def _legend(names: list[str], colours: dict[str, str]) -> str:
    return (
        '<ul class="legend">'
        + "".join(f'<li><span style="background:{colours[n]}"></span>{_e(n)}</li>' for n in names)
        + "</ul>"
    )


def stacked_columns(title: str, labels: list[str], series: dict[str, list[float]], colours: dict, fmt) -> str:
    """Columns per label, one stacked segment per series (values at or below zero are not drawn)."""
    chart = _Chart(title)
    left, right, top, bottom = 70, 10, 10, 60
    plot_w, plot_h = chart.width - left - right, chart.height - top - bottom
    totals = [sum(max(s[i], 0) for s in series.values()) for i in range(len(labels))]
    top_value = _nice_max(max(totals, default=0))
    for n in range(6):
        v = top_value * n / 5
        y = top + plot_h - plot_h * n / 5
        chart.line(left, y, left + plot_w, y)
        chart.text(left - 6, y + 4, fmt(v), anchor="end", size=10, colour="#666")
    slot = plot_w / max(len(labels), 1)
    bar_w = max(min(slot * 0.7, 60), 1)
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for name, values in series.items():
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / top_value
            y -= h
            chart.mark(x, y, bar_w, h, colours[name], name, label, v, fmt(v))
        every = max(1, len(labels) // 16)
        if i % every == 0:
            chart.text(x + bar_w / 2, top + plot_h + 14, label, anchor="end", size=10, rotate=-35)
    return chart.svg(), chart.marks


def horizontal_bars(title: str, rows: list[tuple[str, float]], colour: str, fmt, width: int = 860) -> tuple[str, int]:
    chart = _Chart(title, width=width, height=30 + 26 * max(len(rows), 1))
    left, right = 230, 90
    plot_w = chart.width - left - right
    top_value = _nice_max(max((v for _, v in rows), default=0))
    for i, (label, v) in enumerate(rows):
        y = 10 + 26 * i
        chart.text(left - 8, y + 14, label if len(label) <= 34 else label[:33] + "…", anchor="end")
        w = plot_w * max(v, 0) / top_value
        chart.mark(left, y, w, 18, colour, title, label, v, fmt(v))
        chart.text(left + w + 6, y + 14, fmt(v), size=10, colour="#555")
    return chart.svg(), chart.marks


def grouped_bars(title: str, labels: list[str], series: dict[str, list[float]], colours: dict, fmt) -> tuple[str, int]:
    n = len(series)
    chart = _Chart(title, height=40 + (10 + 16 * n) * max(len(labels), 1))
    left, right = 230, 90
    plot_w = chart.width - left - right
    top_value = _nice_max(max((v for s in series.values() for v in s), default=0))
    for i, label in enumerate(labels):
        y0 = 10 + (10 + 16 * n) * i
        chart.text(left - 8, y0 + 8 * n + 4, label if len(label) <= 34 else label[:33] + "…", anchor="end")
        for j, (name, values) in enumerate(series.items()):
            v = values[i]
            w = plot_w * max(v, 0) / top_value
            chart.mark(left, y0 + 16 * j, w, 14, colours[name], name, label, v, fmt(v))
            chart.text(left + w + 6, y0 + 16 * j + 11, fmt(v), size=10, colour="#555")
    return chart.svg(), chart.marks


def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"num" if i >= numeric_from else ""}">{_e(c)}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:920px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px}
section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:16px 20px;margin:16px 0}
.meta{color:#666;font-size:12px} .note{color:#555;font-size:13px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin-top:12px}
.tile{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:12px}
.tile b{display:block;font-size:20px} .tile span{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:10px}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.legend{list-style:none;padding:0;margin:6px 0;display:flex;flex-wrap:wrap;gap:12px;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.empty{color:#8a6d00;background:#fff8e1;padding:8px 12px;border-radius:6px}
"""


def render(con: duckdb.DuckDBPyConnection, generated_at: datetime | None = None) -> tuple[str, int, int, list[str]]:
    """The report's HTML from a connection to the analysts' copy: (html, charts, marks, sections without data)."""
    generated_at = generated_at or datetime.now(UTC)
    sections: list[str] = []
    empty: list[str] = []
    charts = marks = 0

    currency_rows = _rows(con, "select distinct reporting_currency from marts.report_revenue_by_channel")
    currency = currency_rows[0][0] if currency_rows else "USD"
    through = _rows(con, "select max(purchased_at) from marts.attributed_purchases")
    through = through[0][0] if through and through[0][0] else None

    def money(v):
        return _money(v, currency)

    # headline figures
    totals = _rows(
        con,
        "select sum(net_revenue), sum(customers) filter (where channel = 'TikTok Ads'), "
        "sum(net_revenue) filter (where channel = 'TikTok Ads') from marts.report_revenue_by_channel",
    )
    tiktok = _rows(
        con,
        "select sum(spend), sum(lifetime_revenue), sum(customers), sum(tiktok_reported_conversions), sum(purchases) "
        "from marts.tiktok_campaign_performance",
    )
    revenue, tiktok_customers, tiktok_revenue = totals[0] if totals else (None, None, None)
    spend, campaign_revenue, campaign_customers, reported, ours = tiktok[0] if tiktok else (None,) * 5
    tiles = [
        ("net revenue", money(revenue)),
        ("first touch on TikTok", money(tiktok_revenue)),
        ("TikTok spend", money(spend)),
        ("TikTok ROAS", _ratio(campaign_revenue / spend if spend and campaign_revenue is not None else None)),
        ("TikTok CAC", money(spend / campaign_customers if spend and campaign_customers else None)),
        ("TikTok reports", _share(reported / ours if ours and reported is not None else None) + " of our count"),
    ]
    sections.append(
        '<div class="tiles">'
        + "".join(f'<div class="tile"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in tiles)
        + "</div>"
    )

    # 1. revenue by first-touch channel per month
    rows = _rows(
        con,
        "select strftime(acquisition_month, '%Y-%m'), channel, coalesce(net_revenue, 0) "
        "from marts.report_revenue_by_channel order by 1, 2",
    )
    months = sorted({r[0] for r in rows})
    channel_totals: dict[str, float] = {}
    for _, ch, v in rows:
        channel_totals[ch] = channel_totals.get(ch, 0.0) + float(v)
    channels = sorted(channel_totals, key=lambda c: -channel_totals[c])
    colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(channels)}
    body = '<h2 id="revenue-by-channel">Revenue by first-touch channel</h2>'
    body += (
        f'<p class="note">Net revenue ({_e(currency)}) of the customers each channel brought, by the month of their '
        "first touch; renewals count for the month the customer came.</p>"
    )
    if rows:
        series = {c: [0.0] * len(months) for c in channels}
        for m, ch, v in rows:
            series[ch][months.index(m)] += float(v)
        svg, n = stacked_columns("Revenue by first-touch channel and month", months, series, colours, _short)
        body += _legend(channels, colours) + svg
        charts, marks = charts + 1, marks + n
    else:
        body += '<p class="empty">No purchases built yet.</p>'
        empty.append("revenue-by-channel")
    sections.append(f"<section>{body}</section>")

    # 2. ROAS and CAC per TikTok campaign
    campaigns = _rows(
        con,
        """
        select coalesce(campaign_name, '(unnamed)'), sum(spend), sum(customers), sum(first_purchase_revenue),
               sum(lifetime_revenue), sum(tiktok_reported_conversions), sum(purchases), sum(customers_matched_by_name),
               sum(first_purchases)
        from marts.tiktok_campaign_performance group by 1 order by sum(spend) desc nulls last, 1
        """,
    )
    with_spend = [c for c in campaigns if c[1]]
    body = '<h2 id="roas-cac">ROAS and CAC per TikTok campaign</h2>'
    body += (
        '<p class="note">ROAS: lifetime net revenue to date of the customers whose first touch was the campaign, over '
        "its spend. CAC: spend per such customer. Touches are joined to ads by TikTok's ids in the landing URL, "
        "older ones by campaign and ad name.</p>"
    )
    if with_spend:
        roas = [(c[0], (c[4] or 0) / c[1]) for c in with_spend]
        cac = [(c[0], c[1] / c[2]) for c in with_spend if c[2]]
        svg, n = horizontal_bars("ROAS per TikTok campaign", roas, PALETTE[0], _ratio)
        body += "<h3>ROAS</h3>" + svg
        charts, marks = charts + 1, marks + n
        if cac:
            svg, n = horizontal_bars("CAC per TikTok campaign", cac, PALETTE[1], lambda v: _money(v, currency))
            body += f"<h3>CAC ({_e(currency)})</h3>" + svg
            charts, marks = charts + 1, marks + n
        body += _table(
            [
                "campaign",
                "spend",
                "customers",
                "first-purchase revenue",
                "lifetime revenue",
                "ROAS",
                "CAC",
                "joined by name",
            ],
            [
                [
                    c[0],
                    money(c[1]),
                    f"{c[2] or 0:,}",
                    money(c[3]),
                    money(c[4]),
                    _ratio((c[4] or 0) / c[1] if c[1] else None),
                    money(c[1] / c[2] if c[1] and c[2] else None),
                    f"{c[7] or 0:,}",
                ]
                for c in campaigns
            ],
        )
    else:
        body += (
            '<p class="empty">No TikTok spend pulled: set TIKTOK_MARKETING_ACCESS_TOKEN and TIKTOK_ADVERTISER_IDS '
            "(the README's TikTok spend runbook).</p>"
        )
        empty.append("roas-cac")
    sections.append(f"<section>{body}</section>")

    # 3. ours against TikTok's reported conversions
    body = '<h2 id="ours-vs-tiktok">Our attributed purchases against TikTok\'s reported conversions</h2>'
    compared = [c for c in campaigns if (c[5] or 0) or (c[6] or 0)]
    if compared and with_spend:
        share = (
            (sum(c[5] or 0 for c in compared) / sum(c[6] or 0 for c in compared))
            if any(c[6] for c in compared)
            else None
        )
        body += (
            f'<p class="note">TikTok\'s own report credits its campaigns with {_share(share)} of the purchases we '
            "attribute to them: its pixel misses other devices, refused cookies, blocked scripts and every renewal. "
            "Ours: all purchases to date of the customers each campaign brought; TikTok's: Complete Payments in its "
            "attribution window.</p>"
        )
        names = [c[0] for c in compared]
        cols = {"ours: all purchases": PALETTE[0], "ours: first purchases": PALETTE[5], "TikTok reported": PALETTE[3]}
        svg, n = grouped_bars(
            "Attributed purchases: ours and TikTok's",
            names,
            {
                "ours: all purchases": [float(c[6] or 0) for c in compared],
                "ours: first purchases": [float(c[8] or 0) for c in compared],
                "TikTok reported": [float(c[5] or 0) for c in compared],
            },
            cols,
            lambda v: f"{v:,.0f}",
        )
        body += _legend(list(cols), cols) + svg
        charts, marks = charts + 1, marks + n
    else:
        body += '<p class="empty">No TikTok report pulled yet.</p>'
        empty.append("ours-vs-tiktok")
    sections.append(f"<section>{body}</section>")

    # 4. match-key coverage
    coverage = _rows(
        con,
        """
        select count(*),
               avg(case when has_ttclid then 1.0 else 0.0 end), avg(case when has_ttp then 1.0 else 0.0 end),
               avg(case when has_email then 1.0 else 0.0 end), avg(case when has_phone then 1.0 else 0.0 end),
               avg(case when has_name then 1.0 else 0.0 end), avg(case when has_address then 1.0 else 0.0 end),
               avg(case when has_ttclid or has_ttp or has_email or has_phone then 1.0 else 0.0 end),
               count(*) filter (where eligible)
        from marts.tiktok_conversions
        """,
    )
    body = '<h2 id="match-keys">Match keys of the conversions sent to TikTok</h2>'
    if coverage and coverage[0][0]:
        n_conv, *shares, eligible = coverage[0]
        body += (
            f'<p class="note">Share of the {n_conv:,} conversions ({eligible:,} eligible to send) carrying each key '
            "TikTok matches on (hashed before they leave).</p>"
        )
        keys = ["has_ttclid", "has_ttp", "has_email", "has_phone", "has_name", "has_address", "any_key"]
        svg, n = horizontal_bars(
            "Match-key coverage",
            [(KEY_LABELS[k], float(s)) for k, s in zip(keys, shares, strict=True)],
            PALETTE[2],
            _share,
        )
        body += svg
        charts, marks = charts + 1, marks + n
    else:
        body += '<p class="empty">No conversions built yet.</p>'
        empty.append("match-keys")
    sections.append(f"<section>{body}</section>")

    # 5. delivery outcomes per day
    outcomes = _rows(
        con,
        f"""
        with days as (
            select cast(c.event_time as date) as day, d.status
            from reverse_etl.tiktok_deliveries as d
            join marts.tiktok_conversions as c using (event_id)
        )
        select strftime(day, '%Y-%m-%d'), status, count(*) from days
        where day > (select max(day) from days) - interval {DELIVERY_DAYS} day
        group by 1, 2 order by 1, 2
        """,
    )
    body = '<h2 id="deliveries">TikTok delivery outcomes per day</h2>'
    if outcomes:
        days = sorted({r[0] for r in outcomes})
        statuses = [s for s in STATUS_COLOURS if any(r[1] == s for r in outcomes)]
        statuses += sorted({r[1] for r in outcomes} - set(statuses))
        colours = {s: STATUS_COLOURS.get(s, PALETTE[-1]) for s in statuses}
        series = {s: [0.0] * len(days) for s in statuses}
        for d, s, k in outcomes:
            series[s][days.index(d)] += k
        ledger = _rows(con, "select status, count(*) from reverse_etl.tiktok_deliveries group by 1 order by 2 desc")
        body += (
            f'<p class="note">Conversions of the last {DELIVERY_DAYS} days by the day of the purchase and what the '
            "delivery ledger says of them. Ledger: " + _e(", ".join(f"{s} {k:,}" for s, k in ledger)) + ".</p>"
        )
        svg, n = stacked_columns("Delivery outcomes per day", days, series, colours, lambda v: f"{v:,.0f}")
        body += _legend(statuses, colours) + svg
        charts, marks = charts + 1, marks + n
    else:
        body += '<p class="empty">Nothing delivered yet.</p>'
        empty.append("deliveries")
    sections.append(f"<section>{body}</section>")

    stamp = generated_at.strftime("%Y-%m-%d %H:%M UTC")
    data_through = through.strftime("%Y-%m-%d %H:%M") if through else "no purchases yet"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Marketing report</title><style>{CSS}</style></head>
<body><main>
<h1>Marketing report</h1>
<p class="meta">Built {_e(stamp)} · purchases through {_e(data_through)} · money in {_e(currency)}</p>
{"".join(sections)}
<p class="meta">From the analysts' copy of the warehouse: marts.report_revenue_by_channel,
marts.tiktok_campaign_performance, marts.tiktok_conversions, reverse_etl.tiktok_deliveries.</p>
</main></body></html>
"""
    return page, charts, marks, empty


def _short(v: float) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.3g}{unit}"
    return f"{v:.0f}"


def write_report(analytics_path: Path | str, out_path: Path | str) -> ReportResult:
    """Build the report from the analysts' copy and put it at ``out_path`` with a rename (a reader never sees half)."""
    started = time.perf_counter()
    out_path = Path(out_path)
    with duckdb.connect(str(analytics_path), read_only=True) as con:
        page, charts, marks, empty = render(con)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ReportResult(out_path, charts, marks, time.perf_counter() - started, empty)
