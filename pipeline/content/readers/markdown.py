"""Markdown articles (CommonMark) with optional YAML front matter."""

from __future__ import annotations

from typing import Any

import frontmatter
import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

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
from pipeline.content.readers.common import clean, linkify, parse_date, squash
from pipeline.content.readers.html_blocks import fragment_blocks
from pipeline.errors import ArticleError

_MD = MarkdownIt("commonmark")


def _inline(node: SyntaxTreeNode, images: list[Image], href: str | None = None,
            bold: bool = False, italic: bool = False) -> list[Span]:
    spans: list[Span] = []
    for child in node.children:
        kind = child.type
        if kind == "text":
            spans.extend(
                [Span(child.content, href, bold, italic)] if href
                else [Span(s.text, s.href, bold, italic) for s in linkify(child.content)]
            )
        elif kind == "softbreak":
            spans.append(Span(" ", href, bold, italic))
        elif kind == "hardbreak":
            spans.append(Span("\n", href, bold, italic))
        elif kind == "code_inline":
            spans.append(Span(child.content, href, bold, italic, code=True))
        elif kind == "link":
            spans.extend(_inline(child, images, str(child.attrs.get("href", "")), bold, italic))
        elif kind == "strong":
            spans.extend(_inline(child, images, href, True, italic))
        elif kind == "em":
            spans.extend(_inline(child, images, href, bold, True))
        elif kind == "image":
            title = child.attrs.get("title")
            images.append(Image(str(child.attrs.get("src", "")), child.content, str(title) if title else None))
        elif kind == "html_inline":
            if child.content.lower().startswith("<br"):
                spans.append(Span("\n", href, bold, italic))
        else:
            spans.extend(_inline(child, images, href, bold, italic))
    return spans


def _paragraph_blocks(node: SyntaxTreeNode) -> list[Block]:
    """A paragraph, followed by any images it held; an image on its own line is an image block."""
    images: list[Image] = []
    spans = tuple(_inline(node.children[0], images)) if node.children else ()
    out: list[Block] = []
    if "".join(s.text for s in spans).strip():
        out.append(Paragraph(spans))
    out.extend(images)
    return out


def _items(node: SyntaxTreeNode) -> tuple[ListItem, ...]:
    items: list[ListItem] = []
    for li in node.children:
        spans: list[Span] = []
        children: ListBlock | None = None
        for part in li.children:
            if part.type in ("bullet_list", "ordered_list"):
                children = _list(part)
            else:
                for block in _blocks(part):
                    if isinstance(block, (Paragraph, Quote)):
                        spans.extend([Span(" ")] if spans else [])
                        spans.extend(block.spans)
                    elif isinstance(block, Heading):
                        spans.extend([Span(" ")] if spans else [])
                        spans.append(Span(block.text, bold=True))
        items.append(ListItem(tuple(spans), children))
    return tuple(items)


def _list(node: SyntaxTreeNode) -> ListBlock:
    ordered = node.type == "ordered_list"
    start = int(node.attrs.get("start", 1)) if ordered else 1
    return ListBlock(_items(node), ordered=ordered, start=start)


def _blocks(node: SyntaxTreeNode) -> list[Block]:
    kind = node.type
    if kind == "heading":
        images: list[Image] = []
        text = squash("".join(s.text for s in _inline(node.children[0], images)))
        return [Heading(text, int(node.tag[1]))] + list(images)
    if kind == "paragraph":
        return _paragraph_blocks(node)
    if kind in ("bullet_list", "ordered_list"):
        return [_list(node)]
    if kind == "blockquote":
        inner = [b for child in node.children for b in _blocks(child)]
        spans: list[Span] = []
        for block in inner:
            if isinstance(block, (Paragraph, Quote)):
                spans.extend([Span("\n")] if spans else [])
                spans.extend(block.spans)
        rest = [b for b in inner if not isinstance(b, (Paragraph, Quote))]
        return ([Quote(tuple(spans))] if spans else []) + rest
    if kind in ("fence", "code_block"):
        text = node.content.rstrip("\n")
        return [Paragraph((Span(text, code=True),), preformatted=True)] if text.strip() else []
    if kind == "html_block":
        return fragment_blocks(node.content)
    return [b for child in node.children for b in _blocks(child)]


def _front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ArticleError(f"front matter{line} is not valid YAML", where=source) from None
    if not isinstance(post.metadata, dict):
        raise ArticleError("front matter must be a mapping of keys to values", where=source)
    return dict(post.metadata), post.content


def _field(meta: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = meta.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return None


def read_markdown(text: str, source: str) -> Article:
    meta, body = _front_matter(clean(text), source)
    root = SyntaxTreeNode(_MD.parse(body))
    blocks = [b for child in root.children for b in _blocks(child)]

    title = _field(meta, "title")
    if title is None:
        first = next((b for b in blocks if isinstance(b, Heading)), None)
        if first is None:
            raise ArticleError(
                "has no title: add 'title:' to its front matter or start it with '# Title'",
                where=source,
            )
        title = first.text
        blocks.remove(first)

    hero: Image | None = None
    hero_src = _field(meta, "image", "hero", "hero_image")
    if hero_src:
        hero = Image(hero_src, _field(meta, "image_alt", "hero_alt") or title)
    elif blocks and isinstance(blocks[0], Image):
        hero = blocks.pop(0)  # an image straight under the title is the article's hero

    lead: Inline = ()
    lead_text = _field(meta, "lead", "summary", "description", "excerpt")
    if lead_text:
        lead = linkify(squash(lead_text))
    elif blocks and isinstance(blocks[0], Paragraph) and not blocks[0].preformatted:
        lead = blocks.pop(0).spans

    if not blocks and not lead:
        raise ArticleError("has no article text under its title", where=source)

    tags = meta.get("tags") or ()
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",")]
    return Article(
        title=squash(title),
        lead=lead,
        author=_field(meta, "author", "by"),
        date=parse_date(meta.get("date"), f"{source}: front matter 'date'"),
        canonical_url=_field(meta, "canonical_url", "canonical", "url", "link"),
        hero_image=hero,
        sections=group_sections(blocks),
        source=source,
        tags=tuple(str(t) for t in tags if str(t).strip()),
    )
