"""`campaign report SLUG --html FILE`: the report as one self-contained HTML file.

The charts are SVG drawn here, inline: no script, no stylesheet or font from anywhere, no image
file. The page's own Content-Security-Policy forbids loading anything, so it opens the same
offline, from a mail attachment or from a shared folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from typing import Any

from pipeline.clock import human, utcnow
from pipeline.engagement.links import bare

OPENS, CLICKS, GRID, INK, MUTED = "#1f6f5c", "#c8553d", "#e3ded3", "#22313f", "#6b7680"
STYLE = """
body{margin:0;background:#f4f1ea;color:#22313f;font:15px/1.5 Helvetica,Arial,sans-serif}
main{max-width:960px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px}
.subject{color:#6b7680;margin:0 0 20px}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
.tile{background:#fff;border-radius:8px;padding:12px 14px}
.tile b{display:block;font-size:22px}.tile span{color:#6b7680;font-size:13px}
section{background:#fff;border-radius:8px;padding:16px;margin-top:16px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e3ded3}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.url{word-break:break-all}.note{color:#6b7680;font-size:13px}
svg{display:block;max-width:100%;height:auto}
"""


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start", fill: str = MUTED) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-family="Helvetica, Arial, sans-serif">{escape(text)}</text>')


def _steps(top: int) -> int:
    """A round step for an axis going up to at least `top`, in about four steps."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000):
        if top <= 4 * step:
            return step
    return -(-top // 4)


def hours_chart(opens: Sequence[int], clicks: Sequence[int], width: int = 900, height: int = 260) -> str:
    """Opens and clicks per hour after sending, as two lines over the first len(opens) hours."""
    left, right, top, bottom = 48, 16, 16, 36
    inner_w, inner_h = width - left - right, height - top - bottom
    step = _steps(max([*opens, *clicks, 1]))
    ceiling = step * max(1, -(-max([*opens, *clicks, 1]) // step))
    hours = len(opens)
    parts = [(f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
              'aria-label="Opens and clicks per hour after sending">')]
    for value in range(0, ceiling + 1, step):
        y = top + inner_h - inner_h * value / ceiling
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, y + 4, f"{value:,}", anchor="end"))
    for hour in range(0, hours + 1, 12):
        x = left + inner_w * hour / hours
        parts.append(_text(x, height - bottom + 18, f"{hour} h", anchor="middle"))
    for values, colour, name in ((opens, OPENS, "opens"), (clicks, CLICKS, "clicks")):
        points = " ".join(f"{left + inner_w * (h + 0.5) / hours:.1f},{top + inner_h - inner_h * v / ceiling:.1f}"
                          for h, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
                     f"<title>{name} per hour</title></polyline>")
    parts.append(f'<rect x="{left + 8}" y="{top}" width="10" height="10" fill="{OPENS}"/>'
                 + _text(left + 22, top + 9, "opens", fill=INK)
                 + f'<rect x="{left + 76}" y="{top}" width="10" height="10" fill="{CLICKS}"/>'
                 + _text(left + 90, top + 9, "clicks", fill=INK))
    parts.append("</svg>")
    return "".join(parts)


def bars_chart(rows: Sequence[tuple[str, Sequence[float], str]], colours: Sequence[str], width: int = 900,
               scale: float | None = None, label_width: int = 280) -> str:
    """Horizontal bars: for each row its label, one bar per value (in `colours`), and a note."""
    bar, gap = 14, 10
    per_row = bar * len(colours) + gap
    height = max(len(rows), 1) * per_row + 8
    top = scale or max([v for _, values, _ in rows for v in values] + [1e-9])
    room = width - label_width - 180
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    for n, (label, values, note) in enumerate(rows):
        y = 4 + n * per_row
        shown = label if len(label) <= 48 else label[:45] + "…"
        parts.append(_text(label_width - 8, y + bar * len(colours) / 2 + 4, shown, anchor="end", fill=INK)
                     .replace("</text>", f"<title>{escape(label)}</title></text>"))
        for k, (value, colour) in enumerate(zip(values, colours, strict=True)):
            length = max(room * value / top, 1 if value else 0)
            parts.append(f'<rect x="{label_width}" y="{y + k * bar}" width="{length:.1f}" height="{bar - 2}" '
                         f'fill="{colour}"><title>{escape(label)}: {value:g}</title></rect>')
        parts.append(_text(label_width + room + 8, y + bar * len(colours) / 2 + 4, note))
    parts.append("</svg>")
    return "".join(parts)


def _short(url: str) -> str:
    """An address as a chart labels it: no scheme, no UTM parameters."""
    return re.sub(r"^https?://(www\.)?", "", bare(url)).rstrip("?/") or url


def _tile(value: str, name: str) -> str:
    return f'<div class="tile"><b>{escape(value)}</b><span>{escape(name)}</span></div>'


def _rate_rows(rows: Sequence[dict[str, Any]], key: str) -> list[tuple[str, Sequence[float], str]]:
    return [(str(r[key] or "unknown"), (r["open_rate"], r["click_rate"]),
             f"{percent(r['open_rate'])} · {percent(r['click_rate'])} of {r['sent']:,}") for r in rows]


def render(data: dict[str, Any]) -> str:
    """The whole page, for report.report()'s data."""
    title = f"{data['campaign']}: campaign report"
    tiles = "".join([
        _tile(f"{data['sent']:,}", "sent"), _tile(f"{data['delivered']:,}", "delivered"),
        _tile(percent(data["open_rate"]), f"opened ({data['unique_opens']:,})"),
        _tile(percent(data["click_rate"]), f"clicked ({data['unique_clicks']:,})"),
        _tile(percent(data["unsubscribe_rate"]), f"unsubscribed ({data['unsubscribes']:,})"),
        _tile(f"{data['bounces']:,}", "bounced"), _tile(f"{data['complaints']:,}", "complaints"),
        _tile(f"{data['machine_opens']:,} · {data['machine_clicks']:,}", "machine opens · clicks")])
    links = data["links"][:10]
    link_rows = [(_short(link["url"]), (link["clicks"],), f"{link['clicks']:,} ({link['unique_clicks']:,} unique)")
                 for link in links]
    body = [f"<h1>{escape(data['campaign'])}</h1>",
            f'<p class="subject">{escape(data["subject"] or "")}</p>' if data.get("subject") else "",
            f'<div class="tiles">{tiles}</div>',
            "<section><h2>Opens and clicks, first 72 hours after sending</h2>",
            hours_chart(data["hours"]["opens"], data["hours"]["clicks"]),
            ('<p class="note">Readers only: opens by privacy proxies and clicks by link scanners are counted '
             "apart.</p></section>"),
            "<section><h2>Top links</h2>",
            bars_chart(link_rows, (CLICKS,)) if link_rows else '<p class="note">No links were clicked.</p>',
            _link_table(data["links"]), "</section>"]
    if data.get("ab"):
        body.append(_test_section(data["ab"]))
    for key, heading in (("segments", "Rates by segment"), ("timezones", "Rates by time zone")):
        if data[key]:
            body += [f"<section><h2>{heading}</h2>",
                     bars_chart(_rate_rows(data[key], "segment" if key == "segments" else "timezone"),
                                (OPENS, CLICKS), scale=1.0),
                     '<p class="note">Green: opened; red: clicked; of the messages sent.</p></section>']
    body.append(f'<p class="note">Made {escape(human(utcnow()))}.</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
            + "".join(body) + "</main></body></html>\n")


def _link_table(links: Sequence[dict[str, Any]]) -> str:
    if not links:
        return ""
    rows = "".join(f'<tr><td class="url">{escape(link["url"])}</td><td class="n">{link["clicks"]:,}</td>'
                   f'<td class="n">{link["unique_clicks"]:,}</td></tr>' for link in links)
    return f'<table><tr><th>link</th><th class="n">clicks</th><th class="n">unique</th></tr>{rows}</table>'


def _test_section(test: dict[str, Any]) -> str:
    winner = test.get("winner")
    said = (f"Winner: {winner['variant']}, “{winner['subject']}”, by {test['metric']}." if winner
            else f"The winner is picked by {test['metric']} at {human(test['wait_until'])}.")
    rows = [(f"{v['variant']}: {v['subject']}", (v["open_rate"], v["click_rate"]),
             f"{percent(v['open_rate'])} · {percent(v['click_rate'])} of {v['sent']:,}") for v in test["variants"]]
    return (f"<section><h2>Subject test</h2><p>{escape(said)}</p>" + bars_chart(rows, (OPENS, CLICKS), scale=1.0)
            + '<p class="note">Green: opened; red: clicked; unique readers of the messages sent.</p></section>')
