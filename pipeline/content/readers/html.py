"""Saved blog pages: keep the article's main content, drop navigation, sidebars, banners and scripts.

trafilatura finds the main content; a small walker then turns that part of the page (or any
HTML fragment, such as raw HTML inside Markdown) into the content model.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import lxml.etree as etree
import lxml.html

from pipeline.content.models import (
    Article,
    Block,
    Heading,
    Image,
    Inline,
    ListBlock,
    ListItem,
    Paragraph,
    Quote,
    Span,
    group_sections,
)
from pipeline.content.readers.common import clean, decode, parse_date, squash
from pipeline.errors import ArticleError

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SKIP = {"script", "style", "noscript", "template", "iframe", "form", "button", "svg", "nav",
         "head", "title", "meta", "link", "hr", "input", "select", "textarea"}
_BLOCKS = {"p", "ul", "ol", "blockquote", "img", "figure", "pre", "table", "div", "section",
           "article", "main", "header", "footer", "aside", "dl", "details", "center", "tr", "tbody",
           "thead", "li", "dt", "dd", "td", "th", "body", "html", *_HEADINGS}


def _tag(el: etree._Element) -> str:
    return el.tag.lower() if isinstance(el.tag, str) else ""


class _Walker:
    """Turns an element tree into blocks, resolving relative URLs against the page's address."""

    def __init__(self, base: str | None) -> None:
        self.base = base

    def url(self, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return urljoin(self.base, value) if self.base and value else value

    def blocks(self, el: etree._Element) -> list[Block]:
        out: list[Block] = []
        loose: list[Span] = []
        images: list[Image] = []

        def flush() -> None:
            spans = _trim(loose)
            if spans:
                out.append(Paragraph(spans))
            out.extend(images)
            loose.clear()
            images.clear()

        if el.text:
            loose.append(Span(el.text))
        for child in el:
            tag = _tag(child)
            if tag in _SKIP or not tag:
                pass
            elif tag in _BLOCKS or _has_block_child(child):
                flush()
                out.extend(self.block(child, tag))
            else:
                loose.extend(self.inline(child, images))
            if child.tail:
                loose.append(Span(child.tail))
        flush()
        return out

    def block(self, el: etree._Element, tag: str) -> list[Block]:
        if tag in _HEADINGS:
            text = squash(_text(el))
            return [Heading(text, _HEADINGS[tag])] if text else []
        if tag == "p":
            return self.blocks(el)
        if tag in ("ul", "ol"):
            items = self.list_items(el)
            return [ListBlock(items, ordered=tag == "ol", start=_start(el))] if items else []
        if tag == "blockquote":
            inner = self.blocks(el)
            spans = _join([b.spans for b in inner if isinstance(b, (Paragraph, Quote))])
            rest = [b for b in inner if not isinstance(b, (Paragraph, Quote))]
            return ([Quote(spans)] if spans else []) + rest
        if tag == "img":
            image = self.image(el)
            return [image] if image else []
        if tag == "figure":
            return self.figure(el)
        if tag == "pre":
            text = _text(el).strip("\n")
            return [Paragraph((Span(text, code=True),), preformatted=True)] if text.strip() else []
        if tag == "tr":
            cells = [squash(_text(c)) for c in el if _tag(c) in ("td", "th")]
            cells = [c for c in cells if c]
            return [Paragraph((Span(" · ".join(cells)),))] if cells else []
        return self.blocks(el)

    def list_items(self, el: etree._Element) -> tuple[ListItem, ...]:
        items: list[ListItem] = []
        for li in el:
            if _tag(li) != "li":
                continue
            spans: list[Span] = [Span(li.text)] if li.text else []
            children: ListBlock | None = None
            images: list[Image] = []
            for child in li:
                tag = _tag(child)
                if tag in ("ul", "ol"):
                    nested = self.list_items(child)
                    if nested:
                        children = ListBlock(nested, ordered=tag == "ol", start=_start(child))
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
            trimmed = _trim(spans)
            if trimmed or children:
                items.append(ListItem(trimmed, children))
        return tuple(items)

    def inline(self, el: etree._Element, images: list[Image], bold: bool = False,
               italic: bool = False, href: str | None = None, code: bool = False) -> list[Span]:
        tag = _tag(el)
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
        if tag == "a":
            href = self.url(el.get("href")) or href
        spans: list[Span] = []
        if el.text:
            spans.append(Span(el.text, href=href, bold=bold, italic=italic, code=code))
        for child in el:
            spans.extend(self.inline(child, images, bold, italic, href, code))
            if child.tail:
                spans.append(Span(child.tail, href=href, bold=bold, italic=italic, code=code))
        return spans

    def image(self, el: etree._Element) -> Image | None:
        src = self.url(el.get("src") or el.get("data-src"))
        if not src or src.startswith("data:"):
            return None
        return Image(src=src, alt=squash(el.get("alt") or ""), caption=el.get("title") or None)

    def figure(self, el: etree._Element) -> list[Block]:
        caption_el = next((c for c in el.iter() if _tag(c) == "figcaption"), None)
        caption = squash(_text(caption_el)) if caption_el is not None else None
        imgs = [self.image(c) for c in el.iter() if _tag(c) == "img"]
        out: list[Block] = [
            Image(i.src, i.alt or (caption or ""), caption or i.caption) for i in imgs if i
        ]
        if caption and not out:
            out.append(Paragraph((Span(caption),)))
        return out


def _has_block_child(el: etree._Element) -> bool:
    return any(_tag(c) in _BLOCKS for c in el.iter() if c is not el)


def _start(el: etree._Element) -> int:
    try:
        return int(el.get("start", "1"))
    except ValueError:
        return 1


def _text(el: etree._Element) -> str:
    parts: list[str] = []
    for node in el.iter():
        if _tag(node) in _SKIP and node is not el:
            continue
        if node is not el and node.getparent() is not None and _tag(node.getparent()) in _SKIP:
            continue
        if _tag(node) == "br":
            parts.append("\n")
        if node.text and _tag(node) not in _SKIP:
            parts.append(node.text)
        if node is not el and node.tail:
            parts.append(node.tail)
    return "".join(parts)


def _trim(spans: list[Span]) -> Inline:
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


def fragment_blocks(html: str, base: str | None = None) -> list[Block]:
    """Blocks from a fragment of HTML, such as raw HTML inside a Markdown article."""
    root = lxml.html.fragment_fromstring(clean(html), create_parent="div")
    return _Walker(base).blocks(root)


_BOILERPLATE = re.compile(
    r"cookie|consent|gdpr|share|sharing|social|related|comment|newsletter|subscribe|signup|"
    r"sidebar|widget|breadcrumb|advert|\bads?\b|promo|\bmenu|navbar|popup|modal|skip-link|"
    r"screen-reader|sr-only|visually-hidden|masthead|site-header|\bfooter\b|copyright|site-info",
    re.IGNORECASE,
)
_ALWAYS_DROP = {"nav", "aside", "footer", "form", "script", "style", "noscript", "template", "iframe",
                "button", "svg"}
_TEXT_BLOCKS = ("p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "td", "th", "pre",
                "figcaption", "dd", "dt")


def _main_content(doc: lxml.html.HtmlElement, text: str) -> lxml.html.HtmlElement:
    """The element holding the article.

    trafilatura decides what the article is; its output is then found again in the page and
    the smallest element holding all of it is walked directly, so nothing inside the article
    (a figure's caption, a short closing line) is lost to trafilatura's own pruning.
    """
    import trafilatura  # here, not at the top: it costs 80 ms, and most commands read no HTML page

    extracted = trafilatura.extract(
        text, output_format="xml", include_links=True, include_images=True, include_tables=True,
        include_comments=False, favor_recall=True, deduplicate=False, with_metadata=False,
    )
    if extracted:
        tree = etree.fromstring(extracted.encode("utf-8"))
        wanted = {squash("".join(el.itertext())) for el in tree.iter("p", "head", "item", "quote", "cell")}
        wanted.discard("")
        found = [el for el in doc.iter(*_TEXT_BLOCKS) if squash(el.text_content()) in wanted]
        if found:
            return _common_ancestor(found)
    for path in ("//article", "//main", '//*[@role="main"]', "//body"):
        hits = doc.xpath(path)
        if hits:
            return hits[0]
    return doc


def _common_ancestor(elements: list[lxml.html.HtmlElement]) -> lxml.html.HtmlElement:
    chains = [list(reversed([el, *el.iterancestors()])) for el in elements]
    common = chains[0][0]
    for depth in range(min(len(c) for c in chains)):
        if all(c[depth] is chains[0][depth] for c in chains):
            common = chains[0][depth]
        else:
            break
    if common.tag in _TEXT_BLOCKS and common.getparent() is not None:
        common = common.getparent()  # a one-paragraph article: walk its container
    return common


def _drop_boilerplate(root: lxml.html.HtmlElement) -> None:
    """Remove navigation, sharing widgets, banners and hidden elements inside the article."""
    doomed = []
    for el in root.iterdescendants():
        if not isinstance(el.tag, str):
            doomed.append(el)  # comments and processing instructions
            continue
        marks = f"{el.get('class', '')} {el.get('id', '')} {el.get('role', '')}"
        hidden = el.get("hidden") is not None or el.get("aria-hidden") == "true" or re.search(
            r"display\s*:\s*none", el.get("style", ""))
        if el.tag in _ALWAYS_DROP or hidden or _BOILERPLATE.search(marks) or marks.strip() == "navigation":
            doomed.append(el)
    for el in doomed:
        parent = el.getparent()
        if parent is None:
            continue
        if el.tail:
            previous = el.getprevious()
            if previous is not None:
                previous.tail = (previous.tail or "") + el.tail
            else:
                parent.text = (parent.text or "") + el.tail
        parent.remove(el)


def _meta(doc: lxml.html.HtmlElement, *names: str) -> str | None:
    for name in names:
        for attr in ("property", "name", "itemprop"):
            found = doc.xpath(f'//meta[@{attr}="{name}"]/@content')
            if found and found[0].strip():
                return str(found[0]).strip()
    return None


def _byline(doc: lxml.html.HtmlElement) -> str | None:
    for el in doc.xpath('//*[@rel="author"] | //*[contains(concat(" ", @class, " "), " author ")]'):
        name = squash(el.text_content())
        if 0 < len(name) <= 60:
            return name
    return None


def _declared_charset(data: bytes) -> str | None:
    match = re.search(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_-]+)", data[:4096], re.I)
    return match.group(1).decode("ascii").lower() if match else None


def read_html(data: bytes, source: str) -> Article:
    text = clean(decode(data, Path(source), _declared_charset(data)))
    try:
        doc = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise ArticleError(f"is not a readable HTML page ({exc})", where=source) from None

    canonical = (doc.xpath('//link[@rel="canonical"]/@href') or [None])[0] or _meta(doc, "og:url")
    canonical = str(canonical).strip() if canonical else None
    base = (doc.xpath("//base/@href") or [canonical])[0]
    walker = _Walker(str(base) if base else None)

    container = _main_content(doc, text)
    _drop_boilerplate(container)
    blocks = walker.block(container, _tag(container))

    h1 = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), None)
    if h1 is None:
        h1 = next((squash(h.text_content()) for h in doc.iter("h1")), None)
    page_title = squash(doc.findtext(".//title") or "")
    title = _meta(doc, "og:title") or h1 or re.split(r"\s[|–—-]\s", page_title)[0].strip()
    if not title:
        raise ArticleError("has no title: give the page an <h1> or a <title>", where=source)
    title = squash(title)
    # The title is shown as the hero heading, so its copy in the body would repeat it.
    for i, block in enumerate(blocks):
        if isinstance(block, Heading) and squash(block.text) == title:
            del blocks[i]
            break

    hero_src = _meta(doc, "og:image", "twitter:image")
    hero = Image(walker.url(hero_src) or hero_src, _meta(doc, "og:image:alt") or title) if hero_src else None
    lead: Inline = ()
    if blocks and isinstance(blocks[0], Paragraph) and not blocks[0].preformatted:
        lead = blocks.pop(0).spans
    if not blocks and not lead:
        raise ArticleError("has no article text", where=source)
    author = _meta(doc, "author", "article:author", "byl") or _byline(doc)
    published = _meta(doc, "article:published_time", "datePublished", "date")
    if not published:
        times = doc.xpath("//time/@datetime")
        published = str(times[0]) if times else None
    try:
        published_on = parse_date(published, source)
    except ArticleError:
        published_on = None  # a page's broken metadata is not the article's content
    return Article(
        title=title,
        lead=lead,
        author=author,
        date=published_on,
        canonical_url=canonical,
        hero_image=hero,
        sections=group_sections(blocks),
        source=source,
    )

