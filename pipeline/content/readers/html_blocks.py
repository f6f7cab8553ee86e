"""HTML into the content model: a small walker from elements to blocks and inline spans.

Used on the part of a saved page that holds the article (readers/html.py) and on any HTML
fragment, such as raw HTML inside Markdown or a feed entry's content.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urljoin

import lxml.html
from lxml import etree

from pipeline.content.images import is_local
from pipeline.content.models import (
    Block,
    Heading,
    Image,
    Inline,
    ListBlock,
    ListItem,
    Paragraph,
    Quote,
    RefusedLink,
    Span,
    plain,
)
from pipeline.content.readers.common import clean, squash
from pipeline.content.readers.lines import unsafe_scheme

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SKIP = {"script", "style", "noscript", "template", "iframe", "form", "button", "svg", "nav",
         "head", "title", "meta", "link", "hr", "input", "select", "textarea"}
_BLOCKS = {"p", "ul", "ol", "blockquote", "img", "figure", "pre", "table", "div", "section",
           "article", "main", "header", "footer", "aside", "dl", "details", "center", "tr", "tbody",
           "thead", "li", "dt", "dd", "td", "th", "body", "html", *_HEADINGS}


def tag_name(el: etree._Element) -> str:
    return el.tag.lower() if isinstance(el.tag, str) else ""


class Walker:
    """Turns an element tree into blocks, resolving relative URLs against the page's address.

    Links whose address could run code keep their text and are listed in `refused`; blocks
    carry the line they start on, counted from `first_line` for a fragment of a larger file.
    """

    def __init__(self, base: str | None, refused: list[RefusedLink] | None = None, first_line: int = 1,
                 folder: Path | None = None) -> None:
        self.base = base
        self.refused = refused if refused is not None else []
        self.first_line = first_line
        self.folder = folder  # the article file's folder, where its own images are

    def line(self, el: etree._Element) -> int | None:
        return el.sourceline + self.first_line - 1 if el.sourceline else None

    def url(self, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return urljoin(self.base, value) if self.base and value else value

    def image_url(self, value: str | None) -> str | None:
        """An image's address; a relative path naming a file beside the article stays that path,
        whatever the page's address (content.images makes it part of the email)."""
        if value and self.folder is not None and is_local(value):
            path = unquote(value.strip().split("#", 1)[0].split("?", 1)[0])
            if path and (self.folder / path).is_file():
                return value.strip()
        return self.url(value)

    def blocks(self, el: etree._Element) -> list[Block]:
        out: list[Block] = []
        loose: list[Span] = []
        images: list[Image] = []
        where = [self.line(el)]

        def flush() -> None:
            spans = trim_spans(loose)
            if spans:
                out.append(Paragraph(spans, line=where[0]))
            out.extend(images)
            loose.clear()
            images.clear()

        if el.text:
            loose.append(Span(el.text))
        for child in el:
            tag = tag_name(child)
            if tag in _SKIP or not tag:
                pass
            elif tag in _BLOCKS or _has_block_child(child):
                flush()
                out.extend(self.block(child, tag))
                where[0] = self.line(child)
            else:
                if not loose:
                    where[0] = self.line(child) or where[0]
                loose.extend(self.inline(child, images))
            if child.tail:
                loose.append(Span(child.tail))
        flush()
        return out

    def block(self, el: etree._Element, tag: str) -> list[Block]:
        if tag in _HEADINGS:
            text = squash(_text(el))
            return [Heading(text, _HEADINGS[tag], line=self.line(el))] if text else []
        if tag == "p":
            return self.blocks(el)
        if tag in ("ul", "ol"):
            items = self.list_items(el)
            return [ListBlock(items, ordered=tag == "ol", start=_start(el), line=self.line(el))] if items else []
        if tag == "blockquote":
            inner = self.blocks(el)
            spans = _join([b.spans for b in inner if isinstance(b, (Paragraph, Quote))])
            rest = [b for b in inner if not isinstance(b, (Paragraph, Quote))]
            return ([Quote(spans, line=self.line(el))] if spans else []) + rest
        if tag == "img":
            image = self.image(el)
            return [image] if image else []
        if tag == "figure":
            return self.figure(el)
        if tag == "pre":
            text = _text(el).strip("\n")
            return [Paragraph((Span(text, code=True),), preformatted=True, line=self.line(el))] if text.strip() else []
        if tag == "tr":
            cells = [squash(_text(c)) for c in el if tag_name(c) in ("td", "th")]
            cells = [c for c in cells if c]
            return [Paragraph((Span(" · ".join(cells)),), line=self.line(el))] if cells else []
        return self.blocks(el)

    def list_items(self, el: etree._Element) -> tuple[ListItem, ...]:
        items: list[ListItem] = []
        for li in el:
            if tag_name(li) != "li":
                continue
            spans: list[Span] = [Span(li.text)] if li.text else []
            children: ListBlock | None = None
            images: list[Image] = []
            for child in li:
                tag = tag_name(child)
                if tag in ("ul", "ol"):
                    nested = self.list_items(child)
                    if nested:
                        children = ListBlock(nested, ordered=tag == "ol", start=_start(child), line=self.line(child))
                elif tag in _SKIP:
                    pass
                elif tag in _BLOCKS:
                    for block in self.blocks(child):
                        if isinstance(block, (Paragraph, Quote)):
                            spans.extend([Span(" ")] if spans else [])
                            spans.extend(block.spans)
                else:
                    spans.extend(self.inline(child, images))
                if child.tail:
                    spans.append(Span(child.tail))
            trimmed = trim_spans(spans)
            if trimmed or children:
                items.append(ListItem(trimmed, children, line=self.line(li)))
        return tuple(items)

    def inline(self, el: etree._Element, images: list[Image], bold: bool = False,
               italic: bool = False, href: str | None = None, code: bool = False) -> list[Span]:
        tag = tag_name(el)
        if tag in _SKIP:
            return []
        if tag == "br":
            return [Span("\n", href=href)]
        if tag == "img":
            image = self.image(el)
            if image:
                images.append(image)
            return []
        bold = bold or tag in ("b", "strong")
        italic = italic or tag in ("i", "em", "cite")
        code = code or tag in ("code", "kbd", "tt")
        target = el.get("href") if tag == "a" else None
        if target and unsafe_scheme(target):
            href = None
        elif tag == "a":
            href = self.url(target) or href
        spans: list[Span] = []
        if el.text:
            spans.append(Span(el.text, href=href, bold=bold, italic=italic, code=code))
        for child in el:
            spans.extend(self.inline(child, images, bold, italic, href, code))
            if child.tail:
                spans.append(Span(child.tail, href=href, bold=bold, italic=italic, code=code))
        if target and unsafe_scheme(target):
            self.refused.append(RefusedLink(self.line(el), target.strip(), squash(plain(tuple(spans)))))
        return spans

    def image(self, el: etree._Element) -> Image | None:
        src = self.image_url(el.get("src") or el.get("data-src"))
        if not src or unsafe_scheme(src):
            return None
        return Image(src=src, alt=squash(el.get("alt") or ""), caption=el.get("title") or None, line=self.line(el),
                     width=declared_width(el))

    def figure(self, el: etree._Element) -> list[Block]:
        caption_el = next((c for c in el.iter() if tag_name(c) == "figcaption"), None)
        caption = squash(_text(caption_el)) if caption_el is not None else None
        imgs = [self.image(c) for c in el.iter() if tag_name(c) == "img"]
        out: list[Block] = [
            Image(i.src, i.alt or (caption or ""), caption or i.caption, line=i.line, width=i.width) for i in imgs if i
        ]
        if caption and not out:
            out.append(Paragraph((Span(caption),), line=self.line(el)))
        return out


_PIXELS = re.compile(r"^\s*(\d{1,6})\s*(?:px)?\s*$", re.IGNORECASE)


def declared_width(img: etree._Element) -> int | None:
    """The width in pixels an <img> declares (width="1600"), or None: a percentage or nothing."""
    found = _PIXELS.match(img.get("width") or "")
    return int(found.group(1)) if found else None


def _has_block_child(el: etree._Element) -> bool:
    return any(tag_name(c) in _BLOCKS for c in el.iter() if c is not el)


def _start(el: etree._Element) -> int:
    try:
        return int(el.get("start", "1"))
    except ValueError:
        return 1


def _text(el: etree._Element) -> str:
    parts: list[str] = []
    for node in el.iter():
        if tag_name(node) in _SKIP and node is not el:
            continue
        if node is not el and node.getparent() is not None and tag_name(node.getparent()) in _SKIP:
            continue
        if tag_name(node) == "br":
            parts.append("\n")
        if node.text and tag_name(node) not in _SKIP:
            parts.append(node.text)
        if node is not el and node.tail:
            parts.append(node.tail)
    return "".join(parts)


def trim_spans(spans: list[Span]) -> Inline:
    """Collapse HTML whitespace inside spans and drop empty ones at the edges."""
    out: list[Span] = []
    for span in spans:
        if span.code and "\n" not in span.text:
            text = span.text
        elif span.text == "\n":
            text = "\n"
        else:
            text = re.sub(r"\s+", " ", span.text)
        if not text:
            continue
        if out and out[-1].text.endswith((" ", "\n")) and text.startswith(" "):
            text = text[1:]
            if not text:
                continue
        out.append(Span(text, span.href, span.bold, span.italic, span.code))
    while out and not out[0].text.strip():
        out.pop(0)
    while out and not out[-1].text.strip():
        out.pop()
    if out:
        first, last = out[0], out[-1]
        out[0] = Span(first.text.lstrip(), first.href, first.bold, first.italic, first.code)
        last = out[-1]
        out[-1] = Span(last.text.rstrip(), last.href, last.bold, last.italic, last.code)
    return tuple(out)


def _join(runs: list[Inline]) -> Inline:
    out: list[Span] = []
    for run in runs:
        if out:
            out.append(Span("\n"))
        out.extend(run)
    return tuple(out)


def fragment_blocks(html: str, base: str | None = None, refused: list[RefusedLink] | None = None,
                    first_line: int = 1) -> list[Block]:
    """Blocks from a fragment of HTML, such as raw HTML inside a Markdown article that starts on
    `first_line`; links refused on the way are added to `refused`."""
    root = lxml.html.fragment_fromstring(clean(html), create_parent="div")
    return Walker(base, refused, first_line).blocks(root)
