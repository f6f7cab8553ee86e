"""trafilatura's XML output into the content model.

trafilatura writes the article it found as a small XML vocabulary: <head rend="h2">, <p>,
<list rend="ul|ol"> of <item>, <quote>, <graphic src alt>, <table>/<row>/<cell>, <code>, and
inline <hi rend="#b|#i|#t|#u">, <ref target> and <lb/>. Each kind maps onto one block or span.
"""

from __future__ import annotations

from lxml import etree

from pipeline.content.models import (
    Block,
    Heading,
    Image,
    Inline,
    ListBlock,
    ListItem,
    Paragraph,
    Quote,
    Span,
    plain,
)
from pipeline.content.readers.common import squash
from pipeline.content.readers.html_blocks import Walker, trim_spans

_BLOCK_TAGS = {"p", "head", "list", "quote", "graphic", "table", "code", "div", "ab", "figure", "note"}
_CONTAINERS = {"doc", "main", "body", "div", "ab", "figure", "note", "row"}
_STYLES = {"#b": "bold", "#i": "italic", "#t": "code"}


def parse(xml: str) -> etree._Element | None:
    try:
        root = etree.fromstring(xml.encode("utf-8"), etree.XMLParser(recover=True))
    except etree.XMLSyntaxError:
        return None
    if root is None:
        return None
    main = root.find("main")
    return main if main is not None else root


def _has_blocks(el: etree._Element) -> bool:
    return any(child.tag in _BLOCK_TAGS or child.tag == "list" for child in el)


class TeiReader:
    """Blocks from trafilatura's XML, with the page's addresses resolved by the walker."""

    def __init__(self, walker: Walker) -> None:
        self.walker = walker

    def blocks(self, el: etree._Element) -> list[Block]:
        out: list[Block] = []
        loose: list[Span] = []
        images: list[Image] = []

        def flush() -> None:
            spans = trim_spans(loose)
            if plain(spans).strip():
                out.append(Paragraph(spans))
            out.extend(images)
            loose.clear()
            images.clear()

        if el.text and el.text.strip():
            loose.append(Span(el.text))
        for child in el:
            if not isinstance(child.tag, str):
                pass
            elif child.tag in _BLOCK_TAGS or child.tag in _CONTAINERS or child.tag == "cell":
                flush()
                out.extend(self.block(child))
            else:
                loose.extend(self.inline(child, images))
            if child.tail and child.tail.strip():
                loose.append(Span(child.tail))
        flush()
        return out

    def block(self, el: etree._Element) -> list[Block]:
        tag = el.tag
        if tag == "head":
            text = squash("".join(el.itertext()))
            rend = el.get("rend", "h3")
            level = int(rend[1]) if len(rend) == 2 and rend[1] in "123456" else 3
            return [Heading(text, level)] if text else []
        if tag == "p":
            return self.paragraph(el)
        if tag == "list":
            items = self.items(el)
            return [ListBlock(items, ordered=el.get("rend") == "ol")] if items else []
        if tag == "quote":
            inner = self.blocks(el) if _has_blocks(el) else self.paragraph(el)
            runs = [b.spans for b in inner if isinstance(b, (Paragraph, Quote))]
            spans: list[Span] = []
            for run in runs:
                spans.extend([Span("\n")] if spans else [])
                spans.extend(run)
            rest = [b for b in inner if not isinstance(b, (Paragraph, Quote))]
            return ([Quote(tuple(spans))] if spans else []) + rest
        if tag == "graphic":
            image = self.image(el)
            return [image] if image else []
        if tag == "code":
            text = "".join(el.itertext()).strip("\n")
            return [Paragraph((Span(text, code=True),), preformatted=True)] if text.strip() else []
        if tag == "table":
            return self.table(el)
        return self.blocks(el)

    def paragraph(self, el: etree._Element) -> list[Block]:
        images: list[Image] = []
        spans = self.inline_children(el, images)
        out: list[Block] = [Paragraph(spans)] if plain(spans).strip() else []
        return out + list(images)

    def inline_children(self, el: etree._Element, images: list[Image], **style: bool) -> Inline:
        spans: list[Span] = [Span(el.text, **style)] if el.text else []
        for child in el:
            if isinstance(child.tag, str):
                spans.extend(self.inline(child, images, **style))
            if child.tail:
                spans.append(Span(child.tail, **style))
        return trim_spans(spans)

    def inline(self, el: etree._Element, images: list[Image], href: str | None = None, bold: bool = False,
               italic: bool = False, code: bool = False) -> list[Span]:
        tag = el.tag
        if tag == "lb":
            return [Span("\n", href=href)]
        if tag == "graphic":
            image = self.image(el)
            if image:
                images.append(image)
            return []
        if tag in ("hi", "del"):
            style = _STYLES.get(el.get("rend", ""))
            bold, italic, code = bold or style == "bold", italic or style == "italic", code or style == "code"
        elif tag == "code":
            code = True
        elif tag == "ref":
            target = el.get("target")
            href = (target.strip() if target else None) and self.walker.url(target)
        spans = [Span(el.text, href, bold, italic, code)] if el.text else []
        for child in el:
            if isinstance(child.tag, str):
                spans.extend(self.inline(child, images, href, bold, italic, code))
            if child.tail:
                spans.append(Span(child.tail, href, bold, italic, code))
        return spans

    def items(self, el: etree._Element) -> tuple[ListItem, ...]:
        items: list[ListItem] = []
        for item in el:
            if item.tag != "item":
                continue
            spans: list[Span] = [Span(item.text)] if item.text else []
            children: ListBlock | None = None
            images: list[Image] = []
            for child in item:
                if child.tag == "list":
                    nested = self.items(child)
                    if nested:
                        children = ListBlock(nested, ordered=child.get("rend") == "ol")
                elif child.tag in _BLOCK_TAGS:
                    for block in self.blocks(child) if child.tag != "p" else self.paragraph(child):
                        if isinstance(block, (Paragraph, Quote)):
                            spans.extend([Span(" ")] if spans else [])
                            spans.extend(block.spans)
                elif isinstance(child.tag, str):
                    spans.extend(self.inline(child, images))
                if child.tail:
                    spans.append(Span(child.tail))
            trimmed = trim_spans(spans)
            if trimmed or children:
                items.append(ListItem(trimmed, children))
        return tuple(items)

    def image(self, el: etree._Element) -> Image | None:
        src = self.walker.image_url(el.get("src"))
        if not src:
            return None
        return Image(src, squash(el.get("alt") or ""), el.get("title") or None)

    def table(self, el: etree._Element) -> list[Block]:
        """A data table becomes a paragraph per row ("a · b · c"); a table used for layout, whose
        cells hold paragraphs and headings, gives up its cells' blocks in order."""
        out: list[Block] = []
        for row in (r for r in el if r.tag == "row"):
            cells = [c for c in row if c.tag == "cell"]
            if any(_has_blocks(c) for c in cells):
                for cell in cells:
                    out.extend(self.blocks(cell))
                continue
            runs = [self.inline_children(c, []) for c in cells]
            runs = [r for r in runs if plain(r).strip()]
            spans: list[Span] = []
            for run in runs:
                spans.extend([Span(" · ")] if spans else [])
                spans.extend(run)
            if spans:
                out.append(Paragraph(tuple(spans)))
        return out
