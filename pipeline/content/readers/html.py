"""Saved blog pages: keep the article's main content, drop navigation, sidebars, banners and scripts.

trafilatura finds the main content; the walker in html_blocks then turns that part of the page
into the content model.
"""

from __future__ import annotations

import re
from pathlib import Path

import lxml.etree as etree
import lxml.html

from pipeline.content.models import (
    Article,
    Heading,
    Image,
    Inline,
    Paragraph,
    group_sections,
)
from pipeline.content.readers.common import clean, decode, parse_date, squash
from pipeline.content.readers.html_blocks import Walker, tag_name
from pipeline.errors import ArticleError

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
    walker = Walker(str(base) if base else None)

    container = _main_content(doc, text)
    _drop_boilerplate(container)
    blocks = walker.block(container, tag_name(container))

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

