"""Checks on an article itself, naming the article's own file and line.

Lint of the rendered email (lint.py) can only point into email.html; a broken merge tag or a
javascript: link is fixed in the article, so these findings say where in it:
``article.md:12: unknown merge tag *|FNAM|*``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.content.merge import ALIASES, BUILTIN_FIELDS, TAG, broken_tags, field_name
from pipeline.content.models import (
    Article,
    Heading,
    Image,
    ListBlock,
    Paragraph,
    Quote,
    plain,
)
from pipeline.content.readers.common import squash
from pipeline.content.readers.lines import unsafe_scheme

if TYPE_CHECKING:
    from pipeline.content.lint import Finding

REMOVED_SHOWN = 5  # website lines listed one by one; past this, one line says how many more
_SEARCH_LINES = 60  # how far below a block's first line its words are looked for in the file
# what is left once the good tags are out: a tag with spaces or odd characters inside, or half a
# tag and the word it is stuck to
_BROKEN = re.compile(r"\*\|[^|*\n]{0,40}?\|\*|\S*(?:\*\||\|\*)\S*")


def _short(text: str, limit: int = 60) -> str:
    text = squash(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _File:
    """The article's lines, to name the exact line a tag is on inside a many-line paragraph."""

    def __init__(self, path: str) -> None:
        try:
            self.lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            self.lines = []

    def line_of(self, needle: str, start: int | None) -> int | None:
        if start is None or not self.lines:
            return start
        for n in range(start, min(start + _SEARCH_LINES, len(self.lines) + 1)):
            if needle in self.lines[n - 1]:
                return n
        return start


def _strings(article: Article) -> Iterator[tuple[int | None, str]]:
    """Every piece of the article's text and every address in it, with the line it starts on."""
    yield from _texts(article)
    yield from _addresses(article)


def _addresses(article: Article) -> Iterator[tuple[int | None, str]]:
    for block in article.blocks():
        if isinstance(block, (Paragraph, Quote)):
            yield from ((block.line, s.href) for s in block.spans if s.href)
        elif isinstance(block, ListBlock):
            yield from _items(block, hrefs=True)
    yield from ((article.lead_line, s.href) for s in article.lead if s.href)


def _texts(article: Article) -> Iterator[tuple[int | None, str]]:
    yield article.title_line, article.title
    if article.author:
        yield None, article.author
    yield article.lead_line, plain(article.lead)
    for block in article.blocks():
        if isinstance(block, Heading):
            yield block.line, block.text
        elif isinstance(block, (Paragraph, Quote)):
            yield block.line, plain(block.spans)
        elif isinstance(block, ListBlock):
            yield from _items(block)
        elif isinstance(block, Image):
            yield from ((block.line, s) for s in (block.src, block.alt, block.caption or ""))


def _items(block: ListBlock, hrefs: bool = False) -> Iterator[tuple[int | None, str]]:
    for item in block.items:
        line = item.line or block.line
        if hrefs:
            yield from ((line, s.href) for s in item.spans if s.href)
        else:
            yield line, plain(item.spans)
        if item.children:
            yield from _items(item.children, hrefs)


def _known(fields: Iterable[str] | None) -> set[str]:
    return set(BUILTIN_FIELDS) | {field_name(f) for f in fields or ()}


def _suggestion(name: str, known: set[str]) -> str:
    names = sorted(known | set(ALIASES))
    close = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.75)
    if not close:
        return ""
    guess = close[0].upper() if name.isupper() else close[0]
    return f"; did you mean *|{guess}|*?"


def _tag_findings(article: Article, where: str, file: _File, fields: Iterable[str] | None) -> list[Finding]:
    from pipeline.content.lint import Finding  # lint imports this module

    known = _known(fields)
    found: list[Finding] = []
    seen: set[tuple[int | None, str]] = set()
    for line, text in _strings(article):
        for match in TAG.finditer(text):
            tag, name = match.group(0), match.group(1)
            if field_name(name) in known or (line, tag) in seen:
                continue
            seen.add((line, tag))
            at = file.line_of(tag, line)
            place = f"{where}:{at}" if at else where
            hint = _suggestion(name, known)
            if fields is None and not hint:
                found.append(Finding("warning", "merge-field", place,
                                     f"merge tag {tag} names no built-in field; it stays empty for "
                                     f"subscribers without a {field_name(name)!r} field"))
            else:
                found.append(Finding("error", "merge-tag", place, f"unknown merge tag {tag}{hint}"))
        if not broken_tags(text):
            continue
        for fragment in _BROKEN.findall(TAG.sub(" ", text)):
            if (line, fragment) in seen:
                continue
            seen.add((line, fragment))
            at = file.line_of(fragment, line)
            found.append(Finding("error", "merge-tag", f"{where}:{at}" if at else where,
                                 f"broken merge tag {_short(fragment, 40)}; write *|field|* or *|field:fallback|*"))
    return found


def _link_findings(article: Article, where: str, file: _File) -> list[Finding]:
    from pipeline.content.lint import Finding

    found: list[Finding] = []
    for link in article.refused_links:
        scheme = unsafe_scheme(link.href) or "this kind of"
        at = file.line_of(link.href[:40], link.line) if link.line else None
        label = f" ({_short(link.text, 40)!r} is kept as plain text)" if link.text else ""
        found.append(Finding("error", "unsafe-link", f"{where}:{at}" if at else where,
                             f"link to {_short(link.href, 40)} is not allowed: {scheme}: addresses can run "
                             f"code and mail programs block them{label}"))
    for line, href in _addresses(article):  # readers let none through; an article built by hand might
        if unsafe_scheme(href):
            found.append(Finding("error", "unsafe-link", f"{where}:{line}" if line else where,
                                 f"link to {_short(href, 40)} is not allowed"))
    return found


def _removed_findings(article: Article, where: str) -> list[Finding]:
    from pipeline.content.lint import Finding

    found: list[Finding] = []
    website = [r for r in article.removed if r.kind == "website"]
    for removed in website[:REMOVED_SHOWN]:
        place = f"{where}:{removed.line}" if removed.line else where
        number = f" {removed.line}" if removed.line else ""
        found.append(Finding("warning", "removed-line", place,
                             f"removed website line{number}: {_short(removed.text)!r}"))
    if len(website) > REMOVED_SHOWN:
        found.append(Finding("warning", "removed-line", where,
                             f"removed {len(website) - REMOVED_SHOWN} more website lines"))
    for removed in article.removed:
        if removed.kind == "date":
            found.append(Finding("warning", "ambiguous-date", f"{where}:{removed.line}" if removed.line else where,
                                 f"{removed.text!r} reads as two different dates, so it is not used as the "
                                 f"article's date; write it as 2025-03-14 or 14 March 2025"))
    return found


def article_findings(article: Article, source_path: str | Path, *,
                     fields: Iterable[str] | None = None) -> list[Finding]:
    """Findings about one article, each naming `source_path` and a line in it.

    `fields` are the custom fields subscribers have (city, birth_year...). Given, a merge tag
    naming anything else is an error. Not given, only a near miss of a built-in field
    (*|FNAM|*) is an error, and other names are warnings.
    """
    where = str(source_path)
    file = _File(article.source) if article.source else _File("")
    return (_tag_findings(article, where, file, fields) + _link_findings(article, where, file)
            + _removed_findings(article, where))
