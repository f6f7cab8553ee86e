"""The content model every reader produces and every template consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


def _line() -> int | None:
    """Where a block came from: its first line in the article file, when the reader knows it.
    Left out of comparisons, so two readings of the same words are equal wherever they sit."""
    return field(default=None, compare=False, kw_only=True)  # type: ignore[no-any-return]


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
    line: int | None = _line()


@dataclass(frozen=True)
class Paragraph:
    spans: Inline
    preformatted: bool = False
    line: int | None = _line()


@dataclass(frozen=True)
class ListItem:
    spans: Inline
    children: ListBlock | None = None
    line: int | None = _line()


@dataclass(frozen=True)
class ListBlock:
    items: tuple[ListItem, ...]
    ordered: bool = False
    start: int = 1
    line: int | None = _line()


@dataclass(frozen=True)
class Quote:
    spans: Inline
    cite: str | None = None
    line: int | None = _line()


@dataclass(frozen=True)
class Image:
    src: str
    alt: str
    caption: str | None = None
    line: int | None = _line()
    # The width in pixels the article declares for it (an HTML width attribute), when it does:
    # how lint knows a picture on the web is heavier than email needs without fetching it.
    width: int | None = field(default=None, compare=False, kw_only=True)


Block = Heading | Paragraph | ListBlock | Quote | Image


@dataclass(frozen=True)
class Removed:
    """A line a reader left out on purpose, and where it was: a "Share this" row or a tag list
    ("website"), or a date line that reads two ways, such as 04/03/2025 ("date")."""

    line: int | None
    text: str
    kind: str = "website"


@dataclass(frozen=True)
class RefusedLink:
    """A link whose address could run code (javascript:, vbscript:, data:, file:): its text stays,
    as plain text; the address is dropped and reported."""

    line: int | None
    href: str
    text: str


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
    # What the reader noticed on the way, for lint; not part of what the article says.
    removed: tuple[Removed, ...] = field(default=(), compare=False)
    refused_links: tuple[RefusedLink, ...] = field(default=(), compare=False)
    title_line: int | None = field(default=None, compare=False)
    lead_line: int | None = field(default=None, compare=False)

    @property
    def lead_text(self) -> str:
        return plain(self.lead)

    def plain_text(self) -> str:
        """All the words the article shows, one block to a line: title, lead, headings,
        paragraphs, quotes, list items (nested ones too) and image captions."""
        lines = [self.title, plain(self.lead)]
        for block in self.blocks():
            if isinstance(block, Heading):
                lines.append(block.text)
            elif isinstance(block, (Paragraph, Quote)):
                lines.append(plain(block.spans))
            elif isinstance(block, ListBlock):
                lines.extend(_item_lines(block))
            elif block.caption:
                lines.append(block.caption)
        return "\n".join(line for line in lines if line)

    def blocks(self) -> list[Block]:
        """Every block in reading order, section headings included."""
        out: list[Block] = []
        for section in self.sections:
            if section.heading is not None:
                out.append(section.heading)
            out.extend(section.blocks)
        return out


def _item_lines(block: ListBlock) -> list[str]:
    lines: list[str] = []
    for item in block.items:
        lines.append(plain(item.spans))
        if item.children:
            lines.extend(_item_lines(item.children))
    return lines


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
