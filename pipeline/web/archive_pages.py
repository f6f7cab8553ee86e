"""The archive's files: a sent email made a public page, the index, the Atom feed and the sitemap.

A page is the email's own HTML, as the send fixed it, made fit for everyone to read: its merge
tags filled with the workspace's fallbacks ("Hi there,"), the unsubscribe and preferences links
(which would be a reader's) taken out, or one of them turned into the signup form's address when
there is one, "View in your browser" turned into a link to the archive's index, the hidden
preheader dropped, and its own images pointed at the archive's copies. Nothing in it names a
reader, and nothing counts who reads it. Links within the archive are relative, so the folder
works wherever it is served. Same input, same bytes: no build time is written anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from xml.sax.saxutils import escape, quoteattr

import lxml.html
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from lxml import etree

from pipeline.content.merge import TAG, field_name
from pipeline.content.render import long_date
from pipeline.settings.workspace import Workspace

_env = Environment(loader=PackageLoader("pipeline.web", "templates"), autoescape=select_autoescape(["j2"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters["long_date"] = long_date
READER_LINKS = {"unsubscribe_url", "preferences_url"}
VIEW_LINKS = {"view_url", "archive_url"}
_SEPARATOR_AFTER = re.compile(r"^\s*[·|•–—-]\s*")
_SEPARATOR_BEFORE = re.compile(r"\s*[·|•–—-]\s*$")
INDEX_TEXT = "All newsletters"


@dataclass(frozen=True)
class Listed:
    """One page as the index, the feed and the sitemap show it."""

    path: str  # "back-pain/", relative to the archive
    title: str
    summary: str
    day: date | None  # the day it went out, in the workspace's time zone
    at: datetime | None  # when it went out (UTC)


class Filler:
    """Merge tags as nobody in particular reads them: the tag's fallback or the workspace's, else nothing."""

    def __init__(self, workspace: Workspace) -> None:
        self.defaults = {"first_name": workspace.defaults.first_name_fallback}

    def __call__(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = field_name(match.group(1))
            if name in READER_LINKS or name in VIEW_LINKS or name == "email":
                return ""
            return match.group(2) or self.defaults.get(name, "")

        return TAG.sub(one, text)


def _asset_name(src: str, base: str) -> str | None:
    """The name of one of the articles' own images, whichever way the email refers to it."""
    for prefix in (f"{base}/assets/", "assets/", "cid:"):
        if src.startswith(prefix):
            name = src[len(prefix):].split("@", 1)[0]
            return name if name and "/" not in name else None
    return None


_SRC = re.compile(r'\ssrc="([^"]+)"')


def images_shown(html: str, base: str) -> set[str]:
    """The names of the articles' own images an email shows (by the archive's address or cid:)."""
    return {name for src in _SRC.findall(html) if (name := _asset_name(src, base)) is not None}


def _text_before(element: lxml.html.HtmlElement) -> tuple[lxml.html.HtmlElement, str]:
    """The element holding the text just before `element` (a sibling's tail, or the parent's
    text), and the name of that attribute."""
    previous = element.getprevious()
    return (previous, "tail") if previous is not None else (element.getparent(), "text")


def _remove_link(a: lxml.html.HtmlElement) -> None:
    """Take a link out with the separator (" · ") that joined it to its neighbour."""
    tail = a.tail or ""
    cleaned = _SEPARATOR_AFTER.sub("", tail, count=1)
    if cleaned == tail:
        holder, attribute = _text_before(a)
        before = getattr(holder, attribute) or ""
        setattr(holder, attribute, _SEPARATOR_BEFORE.sub("", before, count=1))
    a.tail = cleaned
    a.drop_tree()


class _Page:
    """One email's element tree being made public (see email_page)."""

    def __init__(self, workspace: Workspace, path: str, subscribe_url: str | None) -> None:
        self.base = workspace.archive.base_url or ""
        self.up = "../" * path.count("/")  # from the page to the archive's root
        self.fill = Filler(workspace)
        self.subscribe_url = subscribe_url
        self.names: list[str] = []

    def walk(self, parent: lxml.html.HtmlElement) -> None:
        for element in list(parent):
            if isinstance(element.tag, str):
                self.element(element)

    def element(self, element: lxml.html.HtmlElement) -> None:
        classes = (element.get("class") or "").split()
        if "preheader" in classes:
            element.drop_tree()
            return
        if element.tag == "a":
            href = element.get("href") or ""
            fields = {field_name(m.group(1)) for m in TAG.finditer(href)}
            if "view-link" in classes or fields & VIEW_LINKS:
                self._relink(element, self.up or "./", INDEX_TEXT)
            elif fields & READER_LINKS:
                if not self.subscribe_url:
                    _remove_link(element)
                    return
                self._relink(element, self.subscribe_url, "Subscribe")
                self.subscribe_url = None  # one is enough; the other reader links go
            elif fields:
                self.walk(element)
                element.drop_tag()  # a link only a reader's copy can fill: its words stay
                return
        if element.tag == "img":
            src = element.get("src") or ""
            name = _asset_name(src, self.base)
            if name is not None:
                element.set("src", f"{self.up}assets/{name}")
                self.names.append(name)
            elif TAG.search(src):
                element.drop_tree()  # filled for each reader (an open pixel, say): not on a public page
                return
        for attribute, value in element.attrib.items():
            if TAG.search(value):
                value = self.fill(value)
                element.set(attribute, value)
            if attribute in ("href", "src") and self.base and value.startswith(f"{self.base}/"):
                element.set(attribute, self.up + value[len(self.base) + 1:] or "./")
        if element.text and "*|" in element.text:
            element.text = self.fill(element.text)
        if element.tail and "*|" in element.tail:
            element.tail = self.fill(element.tail)
        self.walk(element)

    @staticmethod
    def _relink(a: lxml.html.HtmlElement, href: str, text: str) -> None:
        a.set("href", href)
        for child in list(a):
            a.remove(child)
        a.text = text


def email_page(html: str, workspace: Workspace, path: str, description: str,
               subscribe_url: str | None = None) -> tuple[str, list[str]]:
    """A sent email's HTML as the archive's page at `path` ("back-pain/"), and the names of the
    articles' own images it shows (served from the archive's assets/)."""
    page = _Page(workspace, path, subscribe_url)
    doc = lxml.html.document_fromstring(html)
    page.walk(doc)
    head = doc.find("head")
    if head is not None:
        for tag, attributes in (("link", {"rel": "canonical", "href": f"{page.base}/{path}"}),
                                ("link", {"rel": "alternate", "type": "application/atom+xml",
                                          "title": archive_title(workspace), "href": f"{page.up}feed.xml"}),
                                ("meta", {"name": "description", "content": page.fill(description)})):
            head.append(etree.Element(tag, attributes))
    out = lxml.html.tostring(doc, doctype="<!doctype html>", encoding="unicode", method="html")
    return out + ("" if out.endswith("\n") else "\n"), sorted(set(page.names))


def archive_title(workspace: Workspace) -> str:
    return workspace.archive.title or f"{workspace.brand.name} newsletter"


def index_page(workspace: Workspace, listed: list[Listed], subscribe_url: str | None = None) -> str:
    return _env.get_template("archive_index.html.j2").render(
        brand=workspace.brand, title=archive_title(workspace), base=workspace.archive.base_url, entries=listed,
        subscribe_url=subscribe_url)


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def feed(workspace: Workspace, listed: list[Listed]) -> str:
    """An Atom feed of the pages that have a date, newest first; updated when the newest went out."""
    base = workspace.archive.base_url or ""
    title = archive_title(workspace)
    dated = [entry for entry in listed if entry.at is not None]
    updated = max((entry.at for entry in dated if entry.at), default=datetime(1970, 1, 1))
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang={quoteattr(workspace.brand.language)}>',
             f"  <id>{escape(base)}/</id>",
             f"  <title>{escape(title)}</title>",
             f'  <link rel="self" type="application/atom+xml" href={quoteattr(base + "/feed.xml")}/>',
             f'  <link rel="alternate" type="text/html" href={quoteattr(base + "/")}/>',
             f"  <updated>{_instant(updated)}</updated>",
             f"  <author><name>{escape(workspace.brand.name)}</name>"
             + f"<uri>{escape(workspace.brand.website)}</uri></author>"]
    for entry in dated:
        assert entry.at is not None
        url = f"{base}/{entry.path}"
        lines += ["  <entry>",
                  f"    <id>{escape(url)}</id>",
                  f"    <title>{escape(entry.title)}</title>",
                  f'    <link rel="alternate" type="text/html" href={quoteattr(url)}/>',
                  f"    <published>{_instant(entry.at)}</published>",
                  f"    <updated>{_instant(entry.at)}</updated>",
                  *([f"    <summary>{escape(entry.summary)}</summary>"] if entry.summary else []),
                  "  </entry>"]
    return "\n".join([*lines, "</feed>", ""])


def sitemap(workspace: Workspace, listed: list[Listed]) -> str:
    base = workspace.archive.base_url or ""
    newest = max((entry.day for entry in listed if entry.day), default=None)
    rows = [(f"{base}/", newest), *((f"{base}/{entry.path}", entry.day) for entry in listed)]
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for url, day in rows:
        lastmod = f"<lastmod>{day.isoformat()}</lastmod>" if day else ""
        lines.append(f"  <url><loc>{escape(url)}</loc>{lastmod}</url>")
    return "\n".join([*lines, "</urlset>", ""])
