"""The dashboard page: the eight reports as inline SVG charts, the S1 summary, pipeline health.

Rendered on the server from the same dictionaries the JSON endpoints return, so a number on the
page is the number a script reads. Every number is a link to its endpoint and says where in it it
sits (``data-json`` and ``data-path``, keys joined by ``/``), which the browser test checks. No script,
style or font comes from elsewhere: the styles are inline, the charts are SVG, the page reloads
itself (``<meta http-equiv="refresh">``), and ``prefers-color-scheme`` gives a dark room its
colours. Only aggregates are shown: no email, name or key of a customer.
"""

from __future__ import annotations

from html import escape
from typing import Any

REPORTS_JSON = "/api/reports.json"
SUMMARY_JSON = "/api/summary.json"
HEALTH_JSON = "/api/health.json"

STYLE = """
:root { --bg:#f7f7f9; --card:#fff; --fg:#1d2330; --muted:#5b6475; --bar:#3b6fd8; --bar2:#e0803a;
  --line:#1a9c6b; --grid:#d9dce3; --bad:#c0392b; }
@media (prefers-color-scheme: dark) { :root { --bg:#0f1218; --card:#181c25; --fg:#e7eaf0;
  --muted:#98a1b3; --bar:#6b9bff; --bar2:#f0a060; --line:#3fd39a; --grid:#2b3140; --bad:#ff6b5b; } }
* { box-sizing:border-box; }
body { margin:0; padding:1.2rem; background:var(--bg); color:var(--fg);
  font:15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size:1.4rem; margin:0 0 .2rem; } h2 { font-size:1.1rem; margin:1.4rem 0 .6rem; }
h3 { font-size:.95rem; margin:0 0 .5rem; color:var(--muted); font-weight:600; }
.grid { display:grid; gap:.9rem; grid-template-columns:repeat(auto-fill, minmax(330px, 1fr)); }
.card { background:var(--card); border-radius:10px; padding:.9rem 1rem; box-shadow:0 1px 3px #0002; }
.kpis { display:flex; flex-wrap:wrap; gap:.4rem 1.2rem; margin:.2rem 0 .6rem; }
.kpi small { display:block; color:var(--muted); font-size:.75rem; }
a.num { color:var(--fg); text-decoration:none; font-weight:650; font-size:1.15rem;
  border-bottom:1px dotted var(--muted); font-variant-numeric:tabular-nums; }
a.num:hover { color:var(--bar); }
table { border-collapse:collapse; width:100%; font-size:.85rem; }
td, th { padding:.2rem .3rem; text-align:left; border-bottom:1px solid var(--grid); }
td.n, th.n { text-align:right; } td.n a.num { font-size:.85rem; }
svg { width:100%; height:auto; display:block; } svg text { fill:var(--muted); font-size:10px; }
.bar { fill:var(--bar); } .bar2 { fill:var(--bar2); } .ln { stroke:var(--line); fill:none; stroke-width:2; }
.gl { stroke:var(--grid); } .muted { color:var(--muted); font-size:.8rem; } .bad { color:var(--bad); }
"""


def num(value: Any, endpoint: str, path: str) -> str:
    """A number that links to its JSON endpoint and names its place there (``data-path``: keys
    joined by ``/``). Rates show as percentages, other floats in their shortest form."""
    text: object = value
    if value is None:
        text = "n/a"
    elif isinstance(value, float):
        text = f"{value:.1%}" if "rate" in path else f"{value:g}"
    return (
        f'<a class="num" href="{endpoint}" data-json="{endpoint}" data-path="{escape(path)}">'
        f"{escape(str(text))}</a>"
    )


def _kpi(label: str, value: Any, endpoint: str, path: str) -> str:
    return f'<span class="kpi"><small>{escape(label)}</small>{num(value, endpoint, path)}</span>'


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def bars(series: list[tuple[str, float]], second: list[float] | None = None, height: int = 120) -> str:
    """A bar chart (``second``: a bar stacked on each) as SVG; labels under the first and last."""
    if not series:
        return '<p class="muted">no data yet</p>'
    width, top = 320, 18  # headroom for the "max" label
    totals = [v + (second[i] if second else 0) for i, (_, v) in enumerate(series)]
    peak = max(max(totals), 1e-9)
    step = width / len(series)
    out = [f'<svg viewBox="0 0 {width} {height + 18}" role="img">']
    out.append(f'<line class="gl" x1="0" y1="{height}" x2="{width}" y2="{height}"/>')
    for i, (label, value) in enumerate(series):
        x = i * step + step * 0.15
        w = step * 0.7
        h1 = (height - top) * value / peak
        out.append(
            f'<rect class="bar" x="{x:.1f}" y="{height - h1:.1f}" width="{w:.1f}" height="{h1:.1f}">'
            f"<title>{escape(label)}: {value:g}</title></rect>"
        )
        if second:
            h2 = (height - top) * second[i] / peak
            y2 = height - h1 - h2
            out.append(
                f'<rect class="bar2" x="{x:.1f}" y="{y2:.1f}" width="{w:.1f}" height="{h2:.1f}">'
                f"<title>{escape(label)}: {second[i]:g}</title></rect>"
            )
    out.append(f'<text x="0" y="{height + 13}">{escape(series[0][0])}</text>')
    if len(series) > 1:
        out.append(f'<text x="{width}" y="{height + 13}" text-anchor="end">{escape(series[-1][0])}</text>')
    out.append(f'<text x="{width}" y="9" text-anchor="end">max {peak:g}</text></svg>')
    return "".join(out)


def line(series: list[tuple[str, float]], height: int = 120) -> str:
    """A line chart as SVG."""
    if not series:
        return '<p class="muted">no data yet</p>'
    width, top = 320, 18
    peak = max(max(v for _, v in series), 1e-9)
    step = width / max(len(series) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - (height - top) * v / peak:.1f}" for i, (_, v) in enumerate(series)
    )
    return (
        f'<svg viewBox="0 0 {width} {height + 18}" role="img">'
        f'<line class="gl" x1="0" y1="{height}" x2="{width}" y2="{height}"/>'
        f'<polyline class="ln" points="{points}"><title>{escape(series[-1][0])}: {series[-1][1]:g}</title>'
        f'</polyline><text x="0" y="{height + 13}">{escape(series[0][0])}</text>'
        f'<text x="{width}" y="{height + 13}" text-anchor="end">{escape(series[-1][0])}</text>'
        f'<text x="{width}" y="9" text-anchor="end">max {peak:g}</text></svg>'
    )


def _days(report: dict[str, Any], key: str) -> list[tuple[str, float]]:
    return [(row["day"], _float(row[key])) for row in report["by_day"] if row["day"] != "unknown"]


def _variant_of(key: str) -> str:
    """A variant's id beside its (product's) title: variants of one product share the title."""
    if not key.startswith("variant:"):
        return ""
    return f' <span class="muted">#{escape(key.removeprefix("variant:"))}</span>'


def _top(rows: list[dict[str, Any]], endpoint: str, path: str) -> str:
    body = "".join(
        f"<tr><td>{escape(str(r['title'] or r['key']))}{_variant_of(r['key'])}</td>"
        f"<td class=n>{num(r['revenue'], endpoint, f'{path}/{i}/revenue')}</td>"
        f"<td class=n>{num(r['units'], endpoint, f'{path}/{i}/units')}</td></tr>"
        for i, r in enumerate(rows[:5])
    )
    return f'<table><tr><th></th><th class="n">revenue</th><th class="n">units</th></tr>{body}</table>'


def _top_of(report: dict[str, Any], currency: str, key: str) -> str:
    return _top(report[key], REPORTS_JSON, f"{currency}/{key}")


def _currency(currency: str, report: dict[str, Any]) -> str:
    t, c, e = report["total"], escape(currency), REPORTS_JSON
    p = f"{currency}/total"

    def card(title: str, kpis: list[tuple[str, str]], chart: str) -> str:
        shown = "".join(_kpi(label, t[key], e, f"{p}/{key}") for label, key in kpis)
        head = f"<h3>{escape(title)} ({c})</h3>"
        return f'<section class="card">{head}<div class="kpis">{shown}</div>{chart}</section>'

    new = _days(report, "new_customer_orders")
    returning = [v for _, v in _days(report, "returning_customer_orders")]
    return "".join(
        [
            card("1. Revenue", [("total", "revenue")], bars(_days(report, "revenue"))),
            card("2. Orders", [("orders", "orders"), ("cancelled", "cancelled_orders")],
                 bars(_days(report, "orders"))),
            card("3. Average order value", [("AOV", "average_order_value")],
                 line(_days(report, "average_order_value"))),
            card("4. Abandoned checkouts", [("count", "abandoned_checkouts"), ("value", "abandoned_value")],
                 bars(_days(report, "abandoned_checkouts"))),
            card("5. Recovered checkouts", [("count", "recovered_checkouts"), ("value", "recovered_value"),
                                            ("rate", "recovery_rate")],
                 bars(_days(report, "recovered_checkouts"))),
            card("6. New vs returning customers", [("new", "new_customer_orders"),
                                                   ("returning", "returning_customer_orders"),
                                                   ("guest", "guest_orders")], bars(new, returning)),
            f'<section class="card"><h3>7. Top products and variants ({c})</h3>'
            f"<h3>products by revenue</h3>{_top_of(report, currency, 'top_products_by_revenue')}"
            f"<h3>variants by units</h3>{_top_of(report, currency, 'top_variants_by_units')}"
            "</section>",
            card("8. Repeat purchases and lifetime value", [("repeat rate", "repeat_purchase_rate"),
                                                            ("CLV", "customer_lifetime_value"),
                                                            ("customers", "customers")],
                 line(_days(report, "customer_lifetime_value"))),
        ]
    )  # fmt: skip


def _summary(summary: dict[str, Any]) -> str:
    s = SUMMARY_JSON
    stages = "".join(
        f"<tr><td>{escape(stage)}</td><td class=n>{num(n, s, f'deals_by_stage/{stage}')}</td></tr>"
        for stage, n in summary["deals_by_stage"].items()
    )
    kpis = "".join(
        _kpi(label, summary[key], s, key)
        for label, key in (("contacts", "contacts"), ("deals", "deals"), ("orders", "orders"),
                           ("carts", "carts"), ("companies", "companies"), ("products", "products"),
                           ("variants", "variants"), ("line items", "line_items"))
        if key in summary
    )  # fmt: skip
    return (
        f'<section class="card"><h3>Synced to HubSpot (S1)</h3><div class="kpis">{kpis}</div>'
        f"<table>{stages}</table></section>"
    )


def _health(health: dict[str, Any]) -> str:
    h = HEALTH_JSON
    lag = "".join(
        f"<tr><td>{escape(group)}</td><td>{escape(topic)}</td>"
        f"<td class=n>{num(n, h, f'consumer_lag/{group}/{topic}')}</td></tr>"
        for group, topics in health["consumer_lag"].items()
        for topic, n in topics.items()
    )

    def reasons(key: str) -> str:
        rows = "".join(
            f"<tr><td>{escape(r['where'])}</td><td>{escape(r['reason'])}</td>"
            f"<td class=n>{num(r['count'], h, f'{key}/{i}/count')}</td></tr>"
            for i, r in enumerate(health[key][:10])
        )
        return f"<table>{rows}</table>" if rows else '<p class="muted">none</p>'

    kpis = "".join(
        _kpi(label, health[key], h, key)
        for label, key in (("writer backlog", "writer_backlog"), ("timers pending", "timers_pending"),
                           ("timers fired", "timers_fired"), ("HubSpot calls", "hubspot_calls"),
                           ("HubSpot 429s", "hubspot_429s"))
    )  # fmt: skip
    missing = [name for name, ok in health["metrics_reachable"].items() if not ok]
    note = f'<p class="muted bad">/metrics not reachable: {escape(", ".join(missing))}</p>' if missing else ""
    return (
        f'<section class="card"><h3>Pipeline</h3><div class="kpis">{kpis}</div>{note}'
        f"<h3>consumer lag</h3><table>{lag}</table></section>"
        f'<section class="card"><h3>Dead letters by reason</h3>{reasons("dead_letters")}'
        f"<h3>Field problems by reason</h3>{reasons('field_problems')}</section>"
    )


def render(reports: dict[str, Any], summary: dict[str, Any], health: dict[str, Any], refresh_s: float) -> str:
    currencies = (
        "".join(
            f"<h2>Ecommerce reports: {escape(currency)}</h2>"
            f"<div class=grid>{_currency(currency, report)}</div>"
            for currency, report in reports.items()
        )
        or '<h2>Ecommerce reports</h2><p class="muted">No deals yet.</p>'
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{max(1, round(refresh_s))}">'
        "<title>shopsync dashboard</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>Shopify → HubSpot</h1>"
        f'<p class="muted">Refreshes every {refresh_s:g} s. Every number links to its JSON: '
        f'<a href="{REPORTS_JSON}">reports</a>, <a href="{SUMMARY_JSON}">summary</a>, '
        f'<a href="{HEALTH_JSON}">health</a>, <a href="/metrics">metrics</a>.</p>'
        f"<h2>Summary and health</h2><div class=grid>{_summary(summary)}{_health(health)}</div>"
        f"{currencies}</body></html>"
    )
