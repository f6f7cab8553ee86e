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
    group_sections,
)
from pipeline.content.readers.common import clean, linkify
from pipeline.errors import ArticleError

# "-" and "*" need a space after them so "-5 °C" or "*really*" stay prose.
_BULLET = re.compile(r"^\s*(?:[•◦▪‣●○■□▫]\s*|[-*–]\s+)(?P<text>\S.*)$")
_NUMBERED = re.compile(r"^\s*(?P<num>\d{1,3})[.)]\s+(?P<text>\S.*)$")
_BYLINE = re.compile(r"^(?:by|written by)\s+\S.{0,58}$", re.IGNORECASE)
_HEADING_MAX = 80
_CLOSERS = "\"'’”»)]"


@dataclass
class _Line:
    kind: str  # "text", "bullet" or "number"
    text: str
    number: int = 0
    indented: bool = False
    after_blank: bool = False


def _classify(raw: str, after_blank: bool) -> _Line:
    bullet = _BULLET.match(raw)
    if bullet:
        return _Line("bullet", bullet.group("text").strip(), after_blank=after_blank)
    numbered = _NUMBERED.match(raw)
    if numbered:
        return _Line("number", numbered.group("text").strip(), int(numbered.group("num")),
                     after_blank=after_blank)
    return _Line("text", raw.strip(), indented=raw[:1].isspace(), after_blank=after_blank)


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
    for raw in clean(text).split("\n"):
        if not raw.strip():
            blank = True
            continue
        line = _classify(raw.rstrip(), blank)
        blank = False
        previous = out[-1] if out else None
        if previous and line.kind == "text" and not line.after_blank:
            if previous.kind != "text" and line.indented:
                previous.text += " " + line.text  # an item's wrapped second line
                continue
            if previous.kind == "text" and _continues(previous.text, line):
                previous.text += " " + line.text
                continue
        out.append(line)
    return out


def read_text(text: str, source: str) -> Article:
    lines = _lines(text)
    if not lines:
        raise ArticleError("is empty", where=source)
    title = lines.pop(0).text
    author = None
    if lines and lines[0].kind == "text" and _BYLINE.match(lines[0].text) and not _ends_sentence(lines[0].text):
        author = lines.pop(0).text.split(None, 1)[1]
        if author.lower().startswith("by "):
            author = author[3:]

    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.kind in ("bullet", "number"):
            items: list[ListItem] = []
            start = line.number or 1
            while i < len(lines) and lines[i].kind == line.kind:
                items.append(ListItem(linkify(lines[i].text)))
                i += 1
            blocks.append(ListBlock(tuple(items), ordered=line.kind == "number", start=start))
            continue
        following = lines[i + 1] if i + 1 < len(lines) else None
        if following is not None and _is_heading(line.text) and (
            following.kind == "text" or not line.text.endswith(":")
        ):
            blocks.append(Heading(line.text, 2))
        else:
            blocks.append(Paragraph(linkify(line.text)))
        i += 1

    lead = ()
    if blocks and isinstance(blocks[0], Paragraph):
        lead = blocks.pop(0).spans
    if not blocks and not lead:
        raise ArticleError("has a title but no article text under it", where=source)
    return Article(title=title, lead=lead, author=author, sections=group_sections(blocks), source=source)
