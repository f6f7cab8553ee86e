"""`campaign report SLUG --html FILE`: the report as one self-contained HTML file.

The charts are drawn by pygal as static SVG, put inline in the page with pygal's script left out:
no script, no stylesheet or font from anywhere, no image file. The page's own
Content-Security-Policy forbids loading anything, so it opens the same offline, from a mail
attachment or from a shared folder. Each chart has its figures beside it in a table.

pygal is imported when a page is drawn, not when the command line or the figures load.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from pipeline.clock import human, utcnow
from pipeline.engagement.links import bare

OPENS, CLICKS, GRID, INK, MUTED = "#1f6f5c", "#c8553d", "#e3ded3", "#22313f", "#6b7680"
FONT = "Helvetica, Arial, sans-serif"
WIDTH = 900
BASE_CSS = ("file://style.css", "file://graph.css")  # pygal's own, read from the package and put inline
VALUES_AFTER_BARS = "inline:.horizontalbar-graph .text-overlay text.value{text-anchor:start}"
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
summary{cursor:pointer;color:#6b7680;font-size:13px;margin-top:8px}
svg{display:block;max-width:100%;height:auto}
"""


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _config(colours: Sequence[str], height: int, formatter: Callable[[float], str]) -> dict[str, Any]:
    """What every chart shares: the workspace's colours and type, no script, no XML declaration."""
    from pygal.style import Style

    style = Style(background="transparent", plot_background="#ffffff", foreground=INK, foreground_strong=INK,
                  foreground_subtle=MUTED, guide_stroke_color=GRID, major_guide_stroke_color=GRID,
                  guide_stroke_dasharray="1,0", major_guide_stroke_dasharray="1,0", font_family=FONT,
                  colors=tuple(colours), value_colors=tuple(INK for _ in colours), opacity="1", opacity_hover="1",
                  stroke_opacity="1", stroke_opacity_hover="1", stroke_width="2", stroke_width_hover="2",
                  transition="0ms", label_font_size=12, major_label_font_size=12, legend_font_size=13,
                  value_font_size=12, tooltip_font_size=12)
    return {"style": style, "js": [], "disable_xml_declaration": True, "width": WIDTH, "height": height,
            "margin": 8, "spacing": 8, "legend_at_bottom": True, "value_formatter": formatter,
            "truncate_label": -1, "truncate_legend": -1}


def _svg(chart: Any, label: str) -> str:
    """The chart as SVG text, named for screen readers (the figures are in the table beside it).

    With `js=[]` pygal loads no script, but it still writes its configuration into one for the
    tooltips' script to read; a filter on its tree takes that out, so the page has no script at all.
    """
    def static(root: Any) -> Any:
        for parent in root.iter():
            for child in [c for c in parent if isinstance(c.tag, str) and c.tag.endswith("script")]:
                parent.remove(child)
        root.set("role", "img")
        root.set("aria-label", label)
        return root

    chart.add_xml_filter(static)
    svg: str = chart.render(is_unicode=True)
    return svg


def hours_chart(opens: Sequence[int], clicks: Sequence[int]) -> str:
    """Opens and clicks per hour after sending, as two lines over the first len(opens) hours."""
    import pygal

    chart = pygal.Line(**_config((OPENS, CLICKS), 300, _count), x_labels=[f"{h} h" for h in range(len(opens))],
                       x_labels_major_every=12, show_minor_x_labels=False, dots_size=1.5, include_x_axis=True,
                       min_scale=2, max_scale=6)
    chart.add("opens", list(opens))
    chart.add("clicks", list(clicks))
    return _svg(chart, "Opens and clicks per hour after sending")


def bars_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], colours: Sequence[str],
               label: str, rates: bool = False) -> str:
    """Horizontal bars, the first label at the top: one bar per series (in `colours`) for each label,
    each with its value printed beside it; `rates` runs the scale from 0 to 100 %."""
    import pygal

    height = 84 + len(labels) * (20 * len(series) + 14)
    options: dict[str, Any] = {"range": (0, 1)} if rates else {"include_x_axis": True}
    chart = pygal.HorizontalBar(**_config(colours, height, percent if rates else _count), print_values=True,
                                print_values_position="top", margin_right=56,
                                css=(*BASE_CSS, VALUES_AFTER_BARS), **options)
    chart.x_labels = [text if len(text) <= 48 else text[:45] + "…" for text in reversed(labels)]
    for name, values in series:
        chart.add(name, list(reversed(values)))
    return _svg(chart, label)


def _short(url: str) -> str:
    """An address as a chart labels it: no scheme, no UTM parameters."""
    return re.sub(r"^https?://(www\.)?", "", bare(url)).rstrip("?/") or url


def _tile(value: str, name: str) -> str:
    return f'<div class="tile"><b>{escape(value)}</b><span>{escape(name)}</span></div>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], first: str = "") -> str:
    """A table of figures: the first column text, the others numbers."""
    cells = "".join(f'<th class="{"n" if n else first}">{escape(h)}</th>' for n, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if n else first}">{escape(v)}</td>' for n, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _rates(rows: Sequence[dict[str, Any]], names: Sequence[str], label: str) -> str:
    """Open and click rates of each row (a segment, a time zone, a variant): the chart, then the table."""
    chart = bars_chart(names, (("opened", [r["open_rate"] for r in rows]),
                               ("clicked", [r["click_rate"] for r in rows])), (OPENS, CLICKS), label, rates=True)
    table = _table(("", "sent", "opened", "clicked"), [
        (name, f"{r['sent']:,}", f"{percent(r['open_rate'])} ({r['unique_opens']:,})",
         f"{percent(r['click_rate'])} ({r['unique_clicks']:,})") for name, r in zip(names, rows, strict=True)])
    return chart + table + '<p class="note">Unique readers, of the messages sent.</p>'


def _hours_table(hours: dict[str, Sequence[int]]) -> str:
    rows = [(f"{h}–{h + 1} h", f"{o:,}", f"{c:,}")
            for h, (o, c) in enumerate(zip(hours["opens"], hours["clicks"], strict=True)) if o or c]
    if not rows:
        return '<p class="note">No reader opened or clicked in these hours.</p>'
    return ("<details><summary>Each hour’s figures</summary>"
            + _table(("after sending", "opens", "clicks"), rows) + "</details>")


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
    body = [f"<h1>{escape(data['campaign'])}</h1>",
            f'<p class="subject">{escape(data["subject"] or "")}</p>' if data.get("subject") else "",
            f'<div class="tiles">{tiles}</div>',
            "<section><h2>Opens and clicks, first 72 hours after sending</h2>",
            hours_chart(data["hours"]["opens"], data["hours"]["clicks"]), _hours_table(data["hours"]),
            ('<p class="note">Readers only: opens by privacy proxies and clicks by link scanners are counted '
             "apart.</p></section>"),
            "<section><h2>Top links</h2>",
            bars_chart([_short(link["url"]) for link in links], (("clicks", [link["clicks"] for link in links]),),
                       (CLICKS,), "Clicks on the ten most clicked links")
            if any(link["clicks"] for link in links) else '<p class="note">No links were clicked.</p>',
            _link_table(data["links"]), "</section>"]
    if data.get("ab"):
        body.append(_test_section(data["ab"]))
    for key, name, heading in (("segments", "segment", "Rates by segment"),
                               ("timezones", "timezone", "Rates by time zone")):
        if data[key]:
            names = [str(r[name] or "unknown") for r in data[key]]
            body.append(f"<section><h2>{heading}</h2>{_rates(data[key], names, heading)}</section>")
    body.append(f'<p class="note">Made {escape(human(utcnow()))}.</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
            + "".join(body) + "</main></body></html>\n")


def _link_table(links: Sequence[dict[str, Any]]) -> str:
    if not links:
        return ""
    return _table(("link", "clicks", "unique"),
                  [(link["url"], f"{link['clicks']:,}", f"{link['unique_clicks']:,}") for link in links], "url")


def _test_section(test: dict[str, Any]) -> str:
    winner = test.get("winner")
    said = (f"Winner: {winner['variant']}, “{winner['subject']}”, by {test['metric']}." if winner
            else f"The winner is picked by {test['metric']} at {human(test['wait_until'])}.")
    names = [f"{v['variant']}: {v['subject']}" for v in test["variants"]]
    return (f"<section><h2>Subject test</h2><p>{escape(said)}</p>"
            + _rates(test["variants"], names, "Rates by subject") + "</section>")
