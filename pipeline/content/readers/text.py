"""Plain text as people paste it from a website: no markup, only line shapes to go by."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.content.models import (
    Article,
    Block,
    Heading,
    ListBlock,
    ListItem,
    Paragraph,
    Removed,
    group_sections,
)
from pipeline.content.readers.common import clean, linkify
from pipeline.content.readers.lines import closing_line, meta_line, website_line
from pipeline.errors import ArticleError

# "-" and "*" need a space after them so "-5 °C" or "*really*" stay prose.
_BULLET = re.compile(r"^\s*(?:[•◦▪‣●○■□▫]\s*|[-*–]\s+)(?P<text>\S.*)$")
_NUMBERED = re.compile(r"^\s*(?P<num>\d{1,3})[.)]\s+(?P<text>\S.*)$")
_HEADING_MAX = 80
_CLOSERS = "\"'’”»)]"
_TAB = 4
_META_LINES = 3  # byline, date, a category line: how far under the title they are looked for


@dataclass
class _Line:
    kind: str  # "text", "bullet" or "number"
    text: str
    line: int  # where it starts in the file
    number: int = 0
    indent: int = 0
    after_blank: bool = False

    @property
    def listed(self) -> bool:
        return self.kind != "text"


def _indent(raw: str) -> int:
    width = 0
    for char in raw:
        if char == "\t":
            width += _TAB - width % _TAB
        elif char.isspace():
            width += 1
        else:
            break
    return width


def _classify(raw: str, line: int, after_blank: bool) -> _Line:
    indent = _indent(raw)
    bullet = _BULLET.match(raw)
    if bullet:
        return _Line("bullet", bullet.group("text").strip(), line, indent=indent, after_blank=after_blank)
    numbered = _NUMBERED.match(raw)
    if numbered:
        return _Line("number", numbered.group("text").strip(), line, int(numbered.group("num")), indent,
                     after_blank)
    return _Line("text", raw.strip(), line, indent=indent, after_blank=after_blank)


def _ends_sentence(text: str) -> bool:
    core = text.rstrip(_CLOSERS)
    return core.endswith((".", "!", "…", ",", ";"))


def _is_heading(text: str) -> bool:
    """Short, with no closing full stop. Before a paragraph that makes it a heading; before a
    list too, unless it ends with ":" and so reads as the list's opening sentence."""
    return len(text) <= _HEADING_MAX and not _ends_sentence(text)


def _continues(previous: str, line: _Line) -> bool:
    """A hard-wrapped paragraph: the line before stops mid-sentence and this one goes on in lower case."""
    return (not line.after_blank and bool(line.text) and line.text[0].islower()
            and not _ends_sentence(previous) and not previous.endswith((":", "?")))


def _lines(text: str) -> list[_Line]:
    out: list[_Line] = []
    blank = False
    for number, raw in enumerate(clean(text).split("\n"), start=1):
        if not raw.strip():
            blank = True
            continue
        line = _classify(raw.rstrip(), number, blank)
        blank = False
        previous = out[-1] if out else None
        if previous and line.kind == "text" and not line.after_blank:
            if previous.listed and line.indent > 0:
                previous.text += " " + line.text  # an item's wrapped second line
                continue
            if previous.kind == "text" and _continues(previous.text, line):
                previous.text += " " + line.text
                continue
        out.append(line)
    return out


def _list(lines: list[_Line], i: int) -> tuple[ListBlock, int]:
    """The list starting at lines[i]; an item indented further than the one before it opens a
    list inside that item, as "◦" sub-bullets under "•" bullets do when pasted."""
    first = lines[i]
    items: list[ListItem] = []
    while i < len(lines) and lines[i].listed:
        line = lines[i]
        if line.indent < first.indent and items:
            break
        if line.indent > first.indent and items:
            children, i = _list(lines, i)
            last = items[-1]
            if last.children is not None:  # a deeper run after a shallower one: same sub-list
                children = ListBlock(last.children.items + children.items, last.children.ordered,
                                     last.children.start, line=last.children.line)
            items[-1] = ListItem(last.spans, children, line=last.line)
            continue
        if line.kind != first.kind:
            break
        items.append(ListItem(linkify(line.text), line=line.line))
        i += 1
    return ListBlock(tuple(items), ordered=first.kind == "number", start=first.number or 1, line=first.line), i


def read_text(text: str, source: str) -> Article:
    lines = _lines(text)
    if not lines:
        raise ArticleError("is empty", where=source)
    heading = lines.pop(0)
    title = heading.text
    author = None
    published = None
    removed: list[Removed] = []
    # Under the title: a byline, a date line, a category line, in any order.
    for _ in range(_META_LINES):
        if not lines or lines[0].listed:
            break
        meta = meta_line(lines[0].text)
        if meta is not None:
            author = meta.author or author
            if meta.date is not None:
                published = meta.date.value or published
                if meta.date.ambiguous:
                    removed.append(Removed(lines[0].line, lines[0].text, "date"))
            lines.pop(0)
        elif website_line(lines[0].text):
            removed.append(Removed(lines[0].line, lines[0].text))
            lines.pop(0)
        else:
            break
    # At the end: what the website printed under the article.
    trailing: list[Removed] = []
    while lines and (closing_line(lines[-1].text) if lines[-1].kind == "text" else website_line(lines[-1].text)):
        dropped = lines.pop()
        trailing.insert(0, Removed(dropped.line, dropped.text))
    removed.extend(trailing)

    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.listed:
            block, i = _list(lines, i)
            blocks.append(block)
            continue
        following = lines[i + 1] if i + 1 < len(lines) else None
        if following is not None and _is_heading(line.text) and (
            following.kind == "text" or not line.text.endswith(":")
        ):
            blocks.append(Heading(line.text, 2, line=line.line))
        else:
            blocks.append(Paragraph(linkify(line.text), line=line.line))
        i += 1

    lead = ()
    lead_line = None
    if blocks and isinstance(blocks[0], Paragraph):
        first = blocks.pop(0)
        lead, lead_line = first.spans, first.line
    if not blocks and not lead:
        raise ArticleError("has a title but no article text under it", where=source)
    return Article(title=title, lead=lead, author=author, date=published, sections=group_sections(blocks),
                   source=source, removed=tuple(removed), title_line=heading.line, lead_line=lead_line)
