"""The last pass over a saved page's blocks: what is left of the website, and unsafe links.

trafilatura keeps an article's own words well, but a "Read also: ..." pointer, a "Share this:"
row, a tag list or a row of navigation links inside the article's element look like text to it.
Such blocks are taken out here and listed, so lint can say what went.
"""

from __future__ import annotations

from dataclasses import replace

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
    Removed,
    Span,
    plain,
)
from pipeline.content.readers.common import squash
from pipeline.content.readers.lines import (
    closing_line,
    related_heading,
    unsafe_scheme,
    website_line,
)

_SEPARATORS = set(" |·•/-–—»«<>›‹→←,:;")
_HEADING_MAX = 80


def block_text(block: Block) -> str:
    if isinstance(block, Heading):
        return block.text
    if isinstance(block, (Paragraph, Quote)):
        return squash(plain(block.spans))
    if isinstance(block, ListBlock):
        return " ".join(squash(plain(item.spans)) for item in block.items)
    return ""


def _links_only(spans: Inline) -> bool:
    """Spans that are nothing but links and the separators between them."""
    links = {s.href for s in spans if s.href}
    rest = "".join(s.text for s in spans if not s.href)
    return bool(links) and not (set(rest) - _SEPARATORS)


def links_only(block: Block) -> bool:
    """A block that is all link: a teaser card or a list of links to other pages."""
    if isinstance(block, (Paragraph, Quote)):
        return _links_only(block.spans)
    if isinstance(block, ListBlock):
        return all(_links_only(item.spans) for item in block.items)
    return False


def _navigation(block: Block) -> bool:
    """A row of links ("« Back to advice sheets | Print this page"), or a list of nothing but links."""
    if isinstance(block, Paragraph):
        return _links_only(block.spans) and len({s.href for s in block.spans if s.href}) >= 2
    if isinstance(block, ListBlock):
        return all(_links_only(item.spans) and item.children is None for item in block.items)
    return False


def drop_website(blocks: list[Block]) -> tuple[list[Block], list[Removed]]:
    """Blocks without website lines, link rows and "see also" sections, and what was dropped."""
    kept: list[Block] = []
    removed: list[Removed] = []
    skipping = False
    for block in blocks:
        text = block_text(block)
        if isinstance(block, Heading) and related_heading(text):
            skipping = True
            removed.append(Removed(block.line, text))
            continue
        if skipping and (_navigation(block) or (isinstance(block, Paragraph) and _links_only(block.spans))):
            removed.append(Removed(block.line, text))
            continue
        skipping = False
        if isinstance(block, (Paragraph, Heading)) and (website_line(text) or _navigation(block)):
            removed.append(Removed(block.line, text))
            continue
        kept.append(block)
    while kept and isinstance(kept[-1], (Paragraph, Heading)) and closing_line(block_text(kept[-1])):
        dropped = kept.pop()
        removed.append(Removed(dropped.line, block_text(dropped)))
    removed.sort(key=lambda r: r.line or 0)
    return kept, removed


def with_captions(blocks: list[Block], captions: dict[int, str]) -> list[Block]:
    """Images given the captions the page shows (by block index); a paragraph next to the image
    repeating its caption is that caption, extracted as text, and goes."""
    out: list[Block] = []
    skip: set[int] = set()
    for i, block in enumerate(blocks):
        text = captions.get(i)
        if isinstance(block, Image) and text:
            block = replace(block, caption=text, alt=block.alt or text)
            for j in (i + 1, i - 1):
                neighbour = blocks[j] if 0 <= j < len(blocks) else None
                if isinstance(neighbour, Paragraph) and squash(plain(neighbour.spans)) == text:
                    skip.add(j)
                    break
        out.append(block)
    return [b for i, b in enumerate(out) if i not in skip]


def bold_headings(blocks: list[Block]) -> list[Block]:
    """A short paragraph that is all bold, standing before more text, is a heading written the
    old way (Blogger and hand-made pages do this)."""
    out: list[Block] = []
    for i, block in enumerate(blocks):
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        if (isinstance(block, Paragraph) and not block.preformatted and block.spans
                and all(s.bold and not s.href for s in block.spans if s.text.strip())
                and len(text := squash(plain(block.spans))) <= _HEADING_MAX
                and not text.rstrip("\"'’”)").endswith((".", "!", ",", ";", ":"))
                and isinstance(following, (Paragraph, ListBlock, Quote))):
            out.append(Heading(text, 3, line=block.line))
        else:
            out.append(block)
    return out


def _refuse(spans: Inline, line: int | None, refused: list[RefusedLink]) -> Inline:
    out: list[Span] = []
    for n, span in enumerate(spans):
        if span.href and unsafe_scheme(span.href):
            previous = spans[n - 1] if n else None
            if previous is None or previous.href != span.href:
                text = squash("".join(s.text for s in spans[n:] if s.href == span.href))
                refused.append(RefusedLink(line, span.href, text))
            span = replace(span, href=None)
        out.append(span)
    return tuple(out)


def refuse_links(blocks: list[Block]) -> tuple[list[Block], list[RefusedLink]]:
    """Blocks whose javascript:, vbscript:, data: and file: links are plain text, and those links."""
    refused: list[RefusedLink] = []

    def items(block: ListBlock) -> ListBlock:
        return replace(block, items=tuple(
            ListItem(_refuse(i.spans, i.line or block.line, refused), items(i.children) if i.children else None,
                     line=i.line) for i in block.items))

    out: list[Block] = []
    for block in blocks:
        if isinstance(block, (Paragraph, Quote)):
            block = replace(block, spans=_refuse(block.spans, block.line, refused))
        elif isinstance(block, ListBlock):
            block = items(block)
        elif isinstance(block, Image) and unsafe_scheme(block.src):
            refused.append(RefusedLink(block.line, block.src, block.alt))
            continue
        out.append(block)
    return out, refused
