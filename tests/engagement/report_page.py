"""The report's HTML page read back: parsed strictly, checked to load nothing, its pygal charts taken apart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import html5lib

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


@dataclass(frozen=True)
class Chart:
    label: str  # the SVG's aria-label
    series: dict[str, dict[str, str]]  # series name (as its legend says) -> {label: value as printed}
    colours: dict[str, str]  # series name -> the colour its CSS gives it


def parse(html: str) -> Element:
    """The page as a browser's parser reads it; a parse error (a tag left open, a stray `</div>`) fails."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(html)


def _classes(element: Element) -> list[str]:
    return (element.get("class") or "").split()


def assert_offline(page: Element) -> None:
    """Nothing the page shows comes from elsewhere: no script, no external address in any attribute
    that loads something, no url() or @import in any stylesheet, and a policy that forbids loading."""
    assert not [e for e in page.iter() if isinstance(e.tag, str) and e.tag.rsplit("}", 1)[-1] == "script"]
    for element in page.iter():
        if not isinstance(element.tag, str):
            continue  # a comment
        for name in ("src", "href", f"{XLINK}href", "srcset", "action", "poster", "data", "xml:base"):
            value = element.get(name)
            assert value is None or not EXTERNAL.match(value), (element.tag, name, value)
        assert not any(name.startswith("on") for name in element.attrib), element.attrib  # no inline handlers
        styles = [element.get("style") or ""]
        if element.tag.rsplit("}", 1)[-1] == "style":
            styles.append(element.text or "")
        for css in styles:
            assert "url(" not in css and "@import" not in css, css[:200]
    policies = [m.get("content") for m in page.iter("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert policies == ["default-src 'none'; style-src 'unsafe-inline'"]


def charts(page: Element) -> list[Chart]:
    """Every SVG on the page, each of which must be a pygal chart, with its series' values by label."""
    found = []
    for svg in page.iter(f"{SVG}svg"):
        assert "pygal-chart" in _classes(svg), svg.attrib
        assert any(not isinstance(e.tag, str) and (e.text or "").startswith("Generated with pygal")
                   for e in svg.iter()), "no pygal signature"
        names = {int(g.get("id", "").removeprefix("activate-serie-")): "".join(g.itertext())
                 for g in svg.iter(f"{SVG}g") if g.get("id", "").startswith("activate-serie-")}
        css = "".join(s.text or "" for s in svg.iter(f"{SVG}style"))
        series: dict[str, dict[str, str]] = {}
        colours: dict[str, str] = {}
        for group in svg.iter(f"{SVG}g"):
            index = [int(c[len("serie-"):]) for c in _classes(group) if re.fullmatch(r"serie-\d+", c)]
            if not index:
                continue
            name = names.get(index[0], str(index[0]))
            colour = re.search(rf"\.color-{index[0]},[^{{]*\{{stroke:(#[0-9a-f]{{6}})", css)
            colours[name] = colour.group(1) if colour else ""
            values = series.setdefault(name, {})
            for point in (g for g in group.iter(f"{SVG}g") if {"bar", "dots"} & set(_classes(g))):
                # a bar or a dot: its value and its label, in <desc>s
                desc = {d.get("class", "").strip(): d.text or "" for d in point.iter(f"{SVG}desc")}
                if "value" in desc:
                    values[desc.get("x_label", "")] = desc["value"]
        found.append(Chart(svg.get("aria-label", ""), series, colours))
    return found
