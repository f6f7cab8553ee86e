"""Finding what trafilatura extracted back in the saved page.

trafilatura decides what the article is, but its output no longer knows where each part stood.
The page's text is indexed once, so each extracted block can be found again: for its line in
the file, its place in reading order, the element around it (is it inside the article, or in a
sidebar?) and, for an image, the caption trafilatura leaves out.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import lxml.html

from pipeline.content.readers.common import squash
from pipeline.content.readers.html_blocks import Walker, tag_name

_UNSEEN = {"script", "style", "noscript", "template", "head", "title", "svg", "iframe"}
_INVISIBLE = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff\xad]+")
_SIZED = re.compile(r"(?:-\d+x\d+|-scaled|@\dx)(?=\.\w+$)")
_CAPTION_CLASS = re.compile(r"caption", re.IGNORECASE)
_FIGURE_CLASS = re.compile(r"caption|gallery-item|image-block|kg-image|figure", re.IGNORECASE)
_CAPTION_CLIMB = 5
# Containers that hold a page's furniture rather than its article.
BOILERPLATE = re.compile(
    r"cookie|consent|gdpr|share|sharing|social|related|comment|newsletter|subscribe|signup|"
    r"sidebar|widget|breadcrumb|advert|\bads?\b|promo|\bmenu|navbar|popup|modal|skip-link|"
    r"screen-reader|sr-only|visually-hidden|masthead|site-header|\bfooter\b|copyright|site-info",
    re.IGNORECASE,
)
_FURNITURE_TAGS = {"nav", "aside", "footer", "form", "header", "button"}
# Boxes inside an article that point at other pages: a bookmark card, an embedded post, "Related".
_CARDS = re.compile(r"bookmark|embedded-post|link-?card|post-?card|related|yarpp", re.IGNORECASE)


def _key(text: str) -> str:
    """Text as compared here: NFC, without any whitespace, so spacing differences do not matter."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFC", text))


def image_name(url: str) -> str:
    """An image's file name without the size WordPress and others add ("-1024x683", "-scaled")."""
    name = PurePosixPath(urlsplit(url).path).name.lower()
    return _SIZED.sub("", name)


@dataclass(frozen=True)
class Found:
    element: lxml.html.HtmlElement
    offset: int  # where in the page's text it starts: reading order
    line: int | None  # the line of the file it starts on, as near as lxml tells


class Page:
    """The saved page's text, indexed so extracted text can be found again."""

    def __init__(self, doc: lxml.html.HtmlElement, walker: Walker) -> None:
        self.walker = walker
        self.pieces: list[str] = []
        self.starts: list[int] = []
        self.owners: list[lxml.html.HtmlElement] = []
        self.lines: list[int | None] = []
        self.offsets: dict[lxml.html.HtmlElement, int] = {}
        self.size = 0
        body = doc.body if doc.find("body") is not None else doc
        self._index(body)
        self.text = "".join(self.pieces)
        self.images = [el for el in body.iter("img") if el in self.offsets and self._sources(el)]

    def _add(self, text: str | None, owner: lxml.html.HtmlElement, line: int | None) -> None:
        key = _key(text or "")
        if key:
            self.starts.append(self.size)
            self.owners.append(owner)
            self.lines.append(line)
            self.pieces.append(key)
            self.size += len(key)

    def _index(self, el: lxml.html.HtmlElement) -> None:
        self.offsets[el] = self.size
        self._add(el.text, el, el.sourceline)
        for child in el:
            if isinstance(child.tag, str) and tag_name(child) not in _UNSEEN:
                self._index(child)
            # a tail is owned by the parent but starts where the child ends: on the line of the
            # child's last element, as near as lxml (which knows only where elements start) tells
            if child.tail and child.tail.strip():
                ends = [n.sourceline for n in child.iter() if n.sourceline]
                self._add(child.tail, el, max(ends) if ends else el.sourceline)

    def find(self, text: str, after: int = 0) -> Found | None:
        """The smallest element holding this text, preferring a place after `after`."""
        key = _key(text)
        if not key:
            return None
        at = self.text.find(key, after)
        if at < 0:
            at = self.text.find(key)
        if at < 0 and len(key) > 40:
            return self.find(text[: len(text) // 2], after)  # trafilatura trimmed the end of it
        if at < 0:
            return None
        first = bisect_right(self.starts, at) - 1
        last = bisect_right(self.starts, at + len(key) - 1) - 1
        return Found(common_ancestor([self.owners[first], self.owners[last]]), at, self.lines[first])

    def _sources(self, img: lxml.html.HtmlElement) -> list[str]:
        values = [img.get(a) for a in ("src", "data-src", "data-lazy-src", "data-orig-file", "data-image")]
        values += [part.split()[0] for part in (img.get("srcset") or "").split(",") if part.strip()]
        return [u for u in (self.walker.url(v) for v in values if v) if u]

    def image(self, src: str, after: int = 0) -> Found | None:
        """The page's <img> showing this image, at its own size or another."""
        exact = [img for img in self.images if src in self._sources(img)]
        named = exact or [img for img in self.images
                          if image_name(src) in {image_name(s) for s in self._sources(img)}]
        if not named:
            return None
        later = [img for img in named if self.offsets.get(img, 0) >= after]
        img = (later or named)[0]
        return Found(img, self.offsets.get(img, 0), img.sourceline)

    def element_offset(self, el: lxml.html.HtmlElement) -> int:
        return self.offsets.get(el, 0)


def common_ancestor(elements: list[lxml.html.HtmlElement]) -> lxml.html.HtmlElement:
    chains = [list(reversed([el, *el.iterancestors()])) for el in elements]
    common = chains[0][0]
    for depth in range(min(len(c) for c in chains)):
        if all(c[depth] is chains[0][depth] for c in chains):
            common = chains[0][depth]
        else:
            break
    return common


def caption(img: lxml.html.HtmlElement) -> str | None:
    """The caption the page shows with an image: a <figcaption>, or the caption element of the
    box WordPress, Blogger, Jetpack or Squarespace puts around a captioned image."""
    for box in list(img.iterancestors())[:_CAPTION_CLIMB]:
        if len(box.xpath(".//img[not(ancestor::noscript)]")) > 1:
            return None  # a gallery: its caption is not this image's
        if tag_name(box) in ("figure", "table") or _FIGURE_CLASS.search(box.get("class", "")):
            for el in box.iterdescendants():
                if not isinstance(el.tag, str) or el.find(".//img") is not None or tag_name(el) == "img":
                    continue
                if tag_name(el) == "figcaption" or _CAPTION_CLASS.search(el.get("class", "")):
                    text = squash(el.text_content())
                    if text:
                        return text
    return None


def article_container(found: Iterable[tuple[lxml.html.HtmlElement, int]], share: float) -> lxml.html.HtmlElement | None:
    """The deepest element holding at least `share` of the extracted text (element, length)."""
    weights: dict[lxml.html.HtmlElement, int] = {}
    depth: dict[lxml.html.HtmlElement, int] = {}
    total = 0
    for el, length in found:
        total += length
        for n, ancestor in enumerate(reversed([el, *el.iterancestors()])):
            weights[ancestor] = weights.get(ancestor, 0) + length
            depth[ancestor] = n
    held = [el for el, weight in weights.items() if total and weight >= share * total]
    return max(held, key=lambda el: depth[el]) if held else None


def inside(el: lxml.html.HtmlElement, container: lxml.html.HtmlElement) -> bool:
    return el is container or any(a is container for a in el.iterancestors())


def in_furniture(el: lxml.html.HtmlElement, container: lxml.html.HtmlElement | None) -> bool:
    """Whether an element sits in navigation, a sidebar, a sharing box or the like, looking no
    further up than the article's container."""
    for node in [el, *el.iterancestors()]:
        if node is container:
            return False
        marks = f"{node.get('class', '')} {node.get('id', '')} {node.get('role', '')}"
        if tag_name(node) in _FURNITURE_TAGS or BOILERPLATE.search(marks) or node.get("aria-hidden") == "true":
            return True
    return False


def in_card(el: lxml.html.HtmlElement, container: lxml.html.HtmlElement | None) -> bool:
    """Whether an element sits in a box that points at another page, below the article's element."""
    for node in [el, *el.iterancestors()]:
        if node is container:
            return False
        if _CARDS.search(f"{node.get('class', '')} {node.get('id', '')}"):
            return True
    return False
