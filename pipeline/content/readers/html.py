"""Saved blog pages: keep the article's main content, drop navigation, sidebars, banners and scripts.

trafilatura decides what the article is (its default, balanced judgement); its XML output,
with formatting, links and images, becomes the content model (html_tei). Each extracted block
is then found again in the page (html_source) to learn its line, its order and the element it
sits in, which lets the reader

- drop what trafilatura took from outside the article's element (a layout table's menu cell),
- take back, from trafilatura's recall mode, a heading or list it left out *inside* that element,
- give images the captions trafilatura drops,

and a last pass (html_clean) removes "Read also:", "Share this:", tag lists and link rows.
If trafilatura finds nothing, the page's <article>, <main> or <body> is walked instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import lxml.html
from lxml import etree

from pipeline.content.models import (
    Article,
    Block,
    Heading,
    Image,
    Inline,
    ListBlock,
    Paragraph,
    Removed,
    Span,
    group_sections,
)
from pipeline.content.readers.common import clean, decode, parse_date, squash
from pipeline.content.readers.html_blocks import Walker, declared_width, tag_name
from pipeline.content.readers.html_clean import (
    block_text,
    bold_headings,
    drop_website,
    links_only,
    refuse_links,
    with_captions,
)
from pipeline.content.readers.html_source import (
    BOILERPLATE,
    Page,
    article_container,
    caption,
    image_name,
    in_card,
    in_furniture,
    inside,
)
from pipeline.content.readers.html_tei import TeiReader, parse
from pipeline.content.readers.lines import meta_line
from pipeline.errors import ArticleError

_ALWAYS_DROP = {"nav", "aside", "footer", "form", "script", "style", "noscript", "template", "iframe",
                "button", "svg"}
# The article's element is the deepest one holding this share of the text trafilatura kept.
_ARTICLE_SHARE = 0.75
_SEVERAL_BLOCKS = ".//p | .//li | .//h1 | .//h2 | .//h3 | .//h4 | .//blockquote"
_DUMP_SHARE = 0.8


@dataclass
class _Placed:
    block: Block
    element: lxml.html.HtmlElement | None
    offset: int
    line: int | None = None


def _extract(text: str, recall: bool) -> etree._Element | None:
    import trafilatura  # here, not at the top: it costs 80 ms, and most commands read no HTML page

    xml = trafilatura.extract(
        text, output_format="xml", include_formatting=True, include_links=True, include_images=True,
        include_tables=True, include_comments=False, favor_recall=recall, deduplicate=False,
        with_metadata=False,
    )
    return parse(xml) if xml else None


def _place(page: Page, blocks: list[Block]) -> list[_Placed]:
    """Each block with the element it came from and where it stands in the page."""
    placed: list[_Placed] = []
    cursor = 0
    for block in blocks:
        if isinstance(block, Image):
            found = page.image(block.src, cursor)
        else:
            found = page.find(block_text(block), cursor)
            if found is None and isinstance(block, ListBlock) and block.items:
                found = page.find(block_text(ListBlock(block.items[:1])), cursor)
        if found is None:
            placed.append(_Placed(block, None, cursor))
            continue
        cursor = found.offset + 1
        placed.append(_Placed(block, found.element, found.offset, found.line))
    return placed


def _placed(page: Page, extracted: etree._Element) -> list[_Placed]:
    """trafilatura's blocks, placed in the page."""
    out: list[_Placed] = []
    for item in _place(page, TeiReader(page.walker).blocks(extracted)):
        el = item.element
        if (isinstance(item.block, Paragraph) and el is not None and len(el.xpath(_SEVERAL_BLOCKS)) >= 2
                and len(block_text(item.block)) >= _DUMP_SHARE * len(squash(el.text_content()))):
            # one paragraph holding all of several of the page's blocks: trafilatura's last resort
            # on a tiny page, its whole text in one run. The element it came from has the structure.
            out.extend(_place(page, page.walker.block(el, tag_name(el))))
        else:
            out.append(item)
    return out


def _with_lines(page: Page, item: _Placed) -> Block:
    block = item.block
    if item.line is None:
        return block
    if isinstance(block, ListBlock):
        items, cursor = [], item.offset
        for entry in block.items:
            found = page.find(block_text(ListBlock((entry,))), cursor)
            cursor = found.offset + 1 if found else cursor
            items.append(replace(entry, line=found.line if found else item.line))
        return replace(block, items=tuple(items), line=item.line)
    return replace(block, line=item.line)


def _drop(item: _Placed, removed: list[Removed]) -> None:
    if block_text(item.block):
        removed.append(Removed(item.line, block_text(item.block)))


def _title_offset(page: Page, doc: lxml.html.HtmlElement, title: str) -> int | None:
    for h in doc.iter("h1", "h2"):
        if squash(h.text_content()) == title:
            return page.element_offset(h)
    return None


def _article_blocks(page: Page, text: str, title_at: int | None,
                    removed: list[Removed]) -> list[Block] | None:
    """The article's blocks as trafilatura sees them, placed back in the page; None if it finds nothing."""
    found = _extract(text, recall=False)
    recall = _extract(text, recall=True)
    if found is None:
        found, recall = recall, None
    if found is None:
        return None
    trusted = _placed(page, found)
    texts = [(p.element, len(block_text(p.block))) for p in trusted if p.element is not None
             and not isinstance(p.block, Image)]
    container = article_container(texts, _ARTICLE_SHARE)
    start = page.element_offset(container) if container is not None else 0
    kept: list[_Placed] = []
    for item in trusted:
        if item.element is not None and in_card(item.element, container):
            _drop(item, removed)
        elif (item.element is None or container is None or inside(item.element, container)
                or (title_at is not None and title_at <= item.offset < start)):
            kept.append(item)
        else:
            _drop(item, removed)
    if recall is not None and container is not None:
        seen = {block_text(p.block) for p in trusted} | {getattr(p.block, "src", None) for p in trusted}
        taken = {p.element for p in trusted if p.element is not None}
        for item in _placed(page, recall):
            key = block_text(item.block) or getattr(item.block, "src", None)
            el = item.element
            if (el is not None and key not in seen and inside(el, container) and not in_furniture(el, container)
                    and not links_only(item.block)
                    and not any(node in taken for node in (*el.iterancestors(), *el.iter()))):
                kept.append(item)  # left out by the balanced judgement, inside the article all the same
    kept.sort(key=lambda p: p.offset)
    blocks = [_with_lines(page, p) for p in kept]
    captions = {}
    for i, item in enumerate(kept):
        if isinstance(item.block, Image) and item.element is not None and tag_name(item.element) == "img":
            blocks[i] = replace(blocks[i], width=declared_width(item.element))
            found_caption = caption(item.element)
            if found_caption:
                captions[i] = found_caption
    return with_captions(blocks, captions)


def _hero_figure(page: Page, hero: Image | None, blocks: list[Block], title_at: int | None,
                 first_text_at: int | None) -> Image | None:
    """The hero image's own figure, when the page shows it with a caption between the title and
    the text: trafilatura leaves such lead figures out, but the caption is part of the story."""
    if hero is None or title_at is None or any(isinstance(b, Image) and image_name(b.src) == image_name(hero.src)
                                               for b in blocks):
        return None
    found = page.image(hero.src, title_at)
    if found is None or not title_at <= found.offset <= (first_text_at or found.offset):
        return None
    text = caption(found.element)
    alt = squash(found.element.get("alt") or "") or hero.alt
    return Image(hero.src, alt, text, line=found.element.sourceline) if text else None


def _walked(doc: lxml.html.HtmlElement, walker: Walker) -> list[Block]:
    """Without trafilatura's help: the page's <article>, <main> or <body>, minus its furniture."""
    for path in ("//article", "//main", '//*[@role="main"]', "//body"):
        hits = doc.xpath(path)
        if hits:
            root = hits[0]
            break
    else:
        root = doc
    doomed = []
    for el in root.iterdescendants():
        if not isinstance(el.tag, str):
            doomed.append(el)
            continue
        marks = f"{el.get('class', '')} {el.get('id', '')} {el.get('role', '')}"
        hidden = el.get("hidden") is not None or el.get("aria-hidden") == "true" or re.search(
            r"display\s*:\s*none", el.get("style", ""))
        if el.tag in _ALWAYS_DROP or hidden or BOILERPLATE.search(marks):
            doomed.append(el)
    for el in doomed:
        parent = el.getparent()
        if parent is not None:
            el.drop_tree() if isinstance(el, lxml.html.HtmlElement) else parent.remove(el)
    return walker.block(root, tag_name(root))


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
    match = re.search(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_-]+)", data[:4096], re.IGNORECASE)
    return match.group(1).decode("ascii").lower() if match else None


def _title(doc: lxml.html.HtmlElement) -> str | None:
    """og:title, the first <h1>, or the <title> without the site's name after it."""
    h1 = next((squash(h.text_content()) for h in doc.iter("h1") if squash(h.text_content())), None)
    page_title = squash(doc.findtext(".//title") or "")
    og = squash(_meta(doc, "og:title") or "")
    if og and h1 and og != h1 and re.match(rf"{re.escape(h1)}\s+[|–—:·-]\s", og):
        og = h1  # "Getting ahead of hay fever — Meadowbank Natural Health"
    return og or h1 or re.split(r"\s[|–—-]\s", page_title)[0].strip() or None


def _published(doc: lxml.html.HtmlElement, source: str) -> date | None:
    published = _meta(doc, "article:published_time", "datePublished", "date")
    if not published:
        times = doc.xpath("//time/@datetime")
        published = str(times[0]) if times else None
    try:
        return parse_date(published, source)
    except ArticleError:
        return None  # a page's broken metadata is not the article's content


def _lead(blocks: list[Block]) -> tuple[Inline, int | None]:
    """The lead, taken out of the blocks: a subtitle under the title, or the first paragraph
    (after an image or two, which then follow it)."""
    levels = [b.level for b in blocks[1:] if isinstance(b, Heading)]
    if blocks and isinstance(blocks[0], Heading) and levels and blocks[0].level > min(levels):
        # a heading under the title, smaller than the article's own: a subtitle (Substack, Medium)
        subtitle = blocks.pop(0)
        return (Span(subtitle.text),), subtitle.line
    for i, block in enumerate(blocks[:2]):
        if isinstance(block, Paragraph) and not block.preformatted:
            blocks.pop(i)
            return block.spans, block.line
        if not isinstance(block, Image):
            break
    return (), None


def read_html(data: bytes, source: str) -> Article:
    text = clean(decode(data, Path(source), _declared_charset(data)))
    try:
        doc = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise ArticleError(f"is not a readable HTML page ({exc})", where=source) from None

    canonical = (doc.xpath('//link[@rel="canonical"]/@href') or [None])[0] or _meta(doc, "og:url")
    canonical = str(canonical).strip() if canonical else None
    base = (doc.xpath("//base/@href") or [canonical])[0]
    walker = Walker(str(base) if base else canonical, folder=Path(source).parent)
    title = _title(doc)
    if not title:
        raise ArticleError("has no title: give the page an <h1> or a <title>", where=source)
    title = squash(title)

    page = Page(doc, walker)
    title_at = _title_offset(page, doc, title)
    removed: list[Removed] = []
    extracted = _article_blocks(page, text, title_at, removed)
    blocks = extracted if extracted is not None else _walked(doc, walker)
    # The title is shown as the hero heading, so its copy in the body would repeat it.
    title_line = None
    for i, block in enumerate(blocks):
        if isinstance(block, Heading) and squash(block.text) == title:
            title_line = block.line
            del blocks[i]
            break
    cleaned, dropped = drop_website(bold_headings(blocks))
    if any(block_text(b) for b in cleaned):  # the clean-up never takes the last of an article
        blocks, removed = cleaned, sorted(removed + dropped, key=lambda r: r.line or 0)

    author = _meta(doc, "author", "article:author", "byl") or _byline(doc)
    published = _published(doc, source)
    while blocks and isinstance(blocks[0], Paragraph) and (meta := meta_line(block_text(blocks[0]))):
        blocks.pop(0)  # "By Ana Lima | March 14, 2025" above the text: the byline, not the article
        author = author or meta.author
        published = published or (meta.date.value if meta.date else None)

    hero_src = _meta(doc, "og:image", "twitter:image")
    hero = Image(walker.image_url(hero_src) or hero_src, _meta(doc, "og:image:alt") or title) if hero_src else None
    first_text = next((page.find(block_text(b)) for b in blocks if not isinstance(b, Image)), None)
    lead_figure = _hero_figure(page, hero, blocks, title_at, first_text.offset if first_text else None)
    if lead_figure is not None:
        blocks.insert(0, lead_figure)
    if hero is not None and any(isinstance(b, Image) and image_name(b.src) == image_name(hero.src) for b in blocks):
        hero = None  # the article shows it in its place, with its caption: once is enough
    while blocks and isinstance(blocks[-1], Image) and not blocks[-1].alt and not blocks[-1].caption:
        blocks.pop()  # a signature or a divider after the last words, marked decorative by alt=""
    blocks, refused = refuse_links(blocks)
    lead, lead_line = _lead(blocks)
    if not blocks and not lead:
        raise ArticleError("has no article text", where=source)
    return Article(
        title=title,
        lead=lead,
        author=author,
        date=published,
        canonical_url=canonical,
        hero_image=hero,
        sections=group_sections(blocks),
        source=source,
        removed=tuple(removed),
        refused_links=tuple(refused),
        title_line=title_line,
        lead_line=lead_line,
    )
