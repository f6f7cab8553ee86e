"""Markdown articles (CommonMark) with optional YAML front matter.

Merge tags such as ``*|FNAME|*`` are shielded from the parser (which would read their stars as
emphasis) and put back afterwards, so they reach the personalisation stage as written. Links
whose address could run code are kept as their text alone and reported.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import frontmatter
import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from pipeline.content.merge import Shield, shield
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
    RefusedLink,
    Span,
    group_sections,
    plain,
)
from pipeline.content.readers.common import clean, linkify, parse_date, squash
from pipeline.content.readers.html_blocks import fragment_blocks
from pipeline.content.readers.lines import unsafe_scheme
from pipeline.errors import ArticleError

_MD = MarkdownIt("commonmark")
# markdown-it leaves a javascript: link as its raw "[text](javascript:...)" source; it is parsed
# as a link here so that the reader can keep its text and report it instead.
_MD.validateLink = lambda url: True  # type: ignore[method-assign]


class _Reader:
    """One article's body: where it starts in the file, and the links refused on the way."""

    def __init__(self, offset: int) -> None:
        self.offset = offset  # lines of front matter above the body
        self.refused: list[RefusedLink] = []

    def line(self, node: SyntaxTreeNode) -> int | None:
        return node.map[0] + 1 + self.offset if node.map else None

    def inline(self, node: SyntaxTreeNode, images: list[Image], line: list[int], href: str | None = None,
               bold: bool = False, italic: bool = False) -> list[Span]:
        """Spans of an inline node; `line` is a one-item counter of the line being read."""
        spans: list[Span] = []
        for child in node.children:
            kind = child.type
            if kind == "text":
                spans.extend(
                    [Span(child.content, href, bold, italic)] if href
                    else [Span(s.text, s.href, bold, italic) for s in linkify(child.content)]
                )
            elif kind in ("softbreak", "hardbreak"):
                spans.append(Span(" " if kind == "softbreak" else "\n", href, bold, italic))
                line[0] += 1
            elif kind == "code_inline":
                spans.append(Span(child.content, href, bold, italic, code=True))
            elif kind == "link":
                target = str(child.attrs.get("href", ""))
                inner = self.inline(child, images, line, None if unsafe_scheme(target) else target, bold, italic)
                if unsafe_scheme(target):
                    self.refused.append(RefusedLink(line[0], target, squash(plain(tuple(inner)))))
                spans.extend(inner)
            elif kind == "strong":
                spans.extend(self.inline(child, images, line, href, True, italic))
            elif kind == "em":
                spans.extend(self.inline(child, images, line, href, bold, True))
            elif kind == "image":
                src, title = str(child.attrs.get("src", "")), child.attrs.get("title")
                if unsafe_scheme(src) in ("javascript", "vbscript"):
                    self.refused.append(RefusedLink(line[0], src, child.content))
                else:
                    images.append(Image(src, child.content, str(title) if title else None, line=line[0]))
            elif kind == "html_inline":
                if child.content.lower().startswith("<br"):
                    spans.append(Span("\n", href, bold, italic))
            else:
                spans.extend(self.inline(child, images, line, href, bold, italic))
        return spans

    def spans(self, node: SyntaxTreeNode, images: list[Image]) -> Inline:
        """The spans of a paragraph or heading node (its only child is the inline node)."""
        if not node.children:
            return ()
        return tuple(self.inline(node.children[0], images, [self.line(node) or 0]))

    def paragraph(self, node: SyntaxTreeNode) -> list[Block]:
        """A paragraph, followed by any images it held; an image on its own line is an image block."""
        images: list[Image] = []
        spans = self.spans(node, images)
        out: list[Block] = []
        if plain(spans).strip():
            out.append(Paragraph(spans, line=self.line(node)))
        out.extend(images)
        return out

    def items(self, node: SyntaxTreeNode) -> tuple[ListItem, ...]:
        items: list[ListItem] = []
        for li in node.children:
            spans: list[Span] = []
            children: ListBlock | None = None
            for part in li.children:
                if part.type in ("bullet_list", "ordered_list"):
                    children = self.list(part)
                    continue
                for block in self.blocks(part):
                    if isinstance(block, (Paragraph, Quote)):
                        spans.extend([Span(" ")] if spans else [])
                        spans.extend(block.spans)
                    elif isinstance(block, Heading):
                        spans.extend([Span(" ")] if spans else [])
                        spans.append(Span(block.text, bold=True))
            items.append(ListItem(tuple(spans), children, line=self.line(li)))
        return tuple(items)

    def list(self, node: SyntaxTreeNode) -> ListBlock:
        ordered = node.type == "ordered_list"
        start = int(node.attrs.get("start", 1)) if ordered else 1
        return ListBlock(self.items(node), ordered=ordered, start=start, line=self.line(node))

    def blocks(self, node: SyntaxTreeNode) -> list[Block]:
        kind = node.type
        if kind == "heading":
            images: list[Image] = []
            text = squash(plain(self.spans(node, images)))
            return [Heading(text, int(node.tag[1]), line=self.line(node)), *images]
        if kind == "paragraph":
            return self.paragraph(node)
        if kind in ("bullet_list", "ordered_list"):
            return [self.list(node)]
        if kind == "blockquote":
            inner = [b for child in node.children for b in self.blocks(child)]
            spans: list[Span] = []
            for block in inner:
                if isinstance(block, (Paragraph, Quote)):
                    spans.extend([Span("\n")] if spans else [])
                    spans.extend(block.spans)
            rest = [b for b in inner if not isinstance(b, (Paragraph, Quote))]
            return ([Quote(tuple(spans), line=self.line(node))] if spans else []) + rest
        if kind in ("fence", "code_block"):
            text = node.content.rstrip("\n")
            if not text.strip():
                return []
            return [Paragraph((Span(text, code=True),), preformatted=True, line=self.line(node))]
        if kind == "html_block":
            first = self.line(node) or 1
            refused: list[RefusedLink] = []
            found = fragment_blocks(node.content, refused=refused, first_line=first)
            self.refused.extend(refused)
            return found
        return [b for child in node.children for b in self.blocks(child)]


def _front_matter(text: str, source: str) -> tuple[dict[str, Any], str, int]:
    """The front matter, the body, and how many lines of the file come before the body."""
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ArticleError(f"front matter{line} is not valid YAML", where=source) from None
    if not isinstance(post.metadata, dict):
        raise ArticleError("front matter must be a mapping of keys to values", where=source)
    body = post.content
    start = text.rfind(body) if body else len(text)
    return dict(post.metadata), body, text.count("\n", 0, max(start, 0))


def _field(meta: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = meta.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return None


def _restore_spans(spans: Inline, shielded: Shield) -> Inline:
    return tuple(replace(s, text=shielded.restore(s.text), href=shielded.restore(s.href) if s.href else s.href)
                 for s in spans)


def _restore(block: Block, shielded: Shield) -> Block:
    """A block with the merge tags its text and addresses held put back."""
    if isinstance(block, Heading):
        return replace(block, text=shielded.restore(block.text))
    if isinstance(block, (Paragraph, Quote)):
        return replace(block, spans=_restore_spans(block.spans, shielded))
    if isinstance(block, Image):
        return replace(block, src=shielded.restore(block.src), alt=shielded.restore(block.alt),
                       caption=shielded.restore(block.caption) if block.caption else block.caption)
    return replace(block, items=tuple(
        replace(item, spans=_restore_spans(item.spans, shielded),
                children=_restore(item.children, shielded) if item.children else None)  # type: ignore[arg-type]
        for item in block.items))


def read_markdown(text: str, source: str) -> Article:
    meta, body, offset = _front_matter(clean(text), source)
    shielded_body, shielded = shield(body)
    reader = _Reader(offset)
    root = SyntaxTreeNode(_MD.parse(shielded_body))
    blocks = [_restore(b, shielded) for child in root.children for b in reader.blocks(child)]
    refused = tuple(replace(r, href=shielded.restore(r.href), text=shielded.restore(r.text)) for r in reader.refused)

    title = _field(meta, "title")
    title_line = next((n for n, row in enumerate(clean(text).split("\n")[:offset], start=1)
                       if row.startswith("title:")), None)
    if title is None:
        first = next((b for b in blocks if isinstance(b, Heading)), None)
        if first is None:
            raise ArticleError(
                "has no title: add 'title:' to its front matter or start it with '# Title'",
                where=source,
            )
        title, title_line = first.text, first.line
        blocks.remove(first)

    hero: Image | None = None
    hero_src = _field(meta, "image", "hero", "hero_image")
    if hero_src:
        hero_line = next((n for n, row in enumerate(clean(text).split("\n")[:offset], start=1)
                          if re.match(r"(image|hero|hero_image)\s*:", row)), None)
        hero = Image(hero_src, _field(meta, "image_alt", "hero_alt") or title, line=hero_line)
    elif blocks and isinstance(blocks[0], Image):
        hero = blocks.pop(0)  # an image straight under the title is the article's hero

    lead: Inline = ()
    lead_line = None
    lead_text = _field(meta, "lead", "summary", "description", "excerpt")
    if lead_text:
        lead = linkify(squash(lead_text))
    elif blocks and isinstance(blocks[0], Paragraph) and not blocks[0].preformatted:
        first_paragraph = blocks.pop(0)
        lead, lead_line = first_paragraph.spans, first_paragraph.line

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
        refused_links=refused,
        title_line=title_line,
        lead_line=lead_line,
    )
