"""The content model every reader produces and every template consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Span:
    """A run of inline text; a link when href is set."""

    text: str
    href: str | None = None
    bold: bool = False
    italic: bool = False
    code: bool = False


Inline = tuple[Span, ...]


def plain(spans: Inline) -> str:
    """The text of a run of spans without any markup."""
    return "".join(span.text for span in spans)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    spans: Inline
    preformatted: bool = False


@dataclass(frozen=True)
class ListItem:
    spans: Inline
    children: ListBlock | None = None


@dataclass(frozen=True)
class ListBlock:
    items: tuple[ListItem, ...]
    ordered: bool = False
    start: int = 1


@dataclass(frozen=True)
class Quote:
    spans: Inline
    cite: str | None = None


@dataclass(frozen=True)
class Image:
    src: str
    alt: str
    caption: str | None = None


Block = Heading | Paragraph | ListBlock | Quote | Image


@dataclass(frozen=True)
class Section:
    """A heading (None for the text before the first heading) and the blocks under it."""

    heading: Heading | None
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Article:
    title: str
    lead: Inline = ()
    author: str | None = None
    date: date | None = None
    canonical_url: str | None = None
    hero_image: Image | None = None
    sections: tuple[Section, ...] = ()
    source: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def lead_text(self) -> str:
        return plain(self.lead)

    def blocks(self) -> list[Block]:
        """Every block in reading order, section headings included."""
        out: list[Block] = []
        for section in self.sections:
            if section.heading is not None:
                out.append(section.heading)
            out.extend(section.blocks)
        return out


def group_sections(blocks: list[Block], min_level: int | None = None) -> tuple[Section, ...]:
    """Split a flat block list into sections at each heading of the top-most level used.

    Deeper headings stay inside their section as Heading blocks so nothing is flattened away.
    """
    levels = [b.level for b in blocks if isinstance(b, Heading)]
    top = min(levels) if levels else 0
    if min_level is not None:
        top = max(top, min_level)
    sections: list[Section] = []
    heading: Heading | None = None
    current: list[Block] = []
    for block in blocks:
        if isinstance(block, Heading) and block.level <= top:
            if heading is not None or current:
                sections.append(Section(heading, tuple(current)))
            heading, current = block, []
        else:
            current.append(block)
    if heading is not None or current:
        sections.append(Section(heading, tuple(current)))
    return tuple(sections)
