"""Merge tags: per-recipient fields left in the compiled email and filled in per recipient.

A tag is written ``*|first_name|*`` or, with a fallback for an empty value,
``*|first_name:there|*`` (Mailchimp's upper-case names such as ``*|FNAME|*`` and
``*|UNSUB|*`` work too). The compiled HTML and text are split at the tags once; filling a
copy is then a join, cheap enough to run once per recipient.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

TAG = re.compile(r"\*\|([A-Za-z_][A-Za-z0-9_]*)(?::([^|*]*))?\|\*")
ALIASES = {
    "fname": "first_name",
    "lname": "last_name",
    "unsub": "unsubscribe_url",
    "update_profile": "preferences_url",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
STANDARD_FIELDS = ("first_name", "last_name", "email", "unsubscribe_url", "preferences_url")
# Every field a merge tag can name without an imported custom field of that name.
BUILTIN_FIELDS = (*STANDARD_FIELDS, "timezone")


def tag(field: str, fallback: str | None = None) -> str:
    """The merge tag for a field, as templates write it into the email."""
    if fallback is None or fallback == "":
        return f"*|{field}|*"
    cleaned = fallback.replace("|", "/").replace("*", "")
    return f"*|{field}:{cleaned}|*"


def field_name(name: str) -> str:
    lowered = name.lower()
    return ALIASES.get(lowered, lowered)


@dataclass(frozen=True)
class PerPart:
    """A merge value written one way in the HTML and another in the text part (the tracking notice:
    a sentence after the reason in the HTML, its own wrapped lines in the text)."""

    html: str
    text: str


@dataclass(frozen=True)
class Slot:
    field: str
    fallback: str

    def value(self, values: Mapping[str, object], html: bool, defaults: Mapping[str, str] | None) -> str:
        """This slot's text for one recipient: escaped for HTML; fallbacks are already in the part's form."""
        value = values.get(self.field)
        if isinstance(value, PerPart):
            value = value.html if html else value.text
        if value is None or value == "":
            if self.fallback:
                return self.fallback
            value = (defaults or {}).get(self.field, "")
        text = str(value)
        if not text.isprintable():  # CR, NUL and friends never come from a real name
            text = _CONTROL.sub(" ", text.replace("\r\n", "\n"))
        return escape(text, quote=True) if html else text


@dataclass(frozen=True)
class Prepared:
    """A compiled part split at its merge tags: literal strings and slots, in order."""

    parts: tuple[str | Slot, ...]

    @property
    def fields(self) -> set[str]:
        return {p.field for p in self.parts if isinstance(p, Slot)}

    def fill(self, values: Mapping[str, object], *, html: bool,
             defaults: Mapping[str, str] | None = None) -> str:
        """One recipient's copy. Values are escaped for HTML; fallbacks are already in the part's form."""
        return "".join(part if isinstance(part, str) else part.value(values, html, defaults) for part in self.parts)

    def settled(self, field: str, value: object, *, html: bool) -> Prepared:
        """This part with `field` filled in once: for a value that is the same in every copy made
        from it (a tracked send's notice), so that no copy pays for it as a merge value."""
        parts: list[str | Slot] = []
        for part in self.parts:
            piece = part.value({field: value}, html, None) if isinstance(part, Slot) and part.field == field else part
            if isinstance(piece, str) and parts and isinstance(parts[-1], str):
                parts[-1] += piece
            elif piece != "":
                parts.append(piece)
        return Prepared(tuple(parts))


def prepare(text: str) -> Prepared:
    parts: list[str | Slot] = []
    pos = 0
    for match in TAG.finditer(text):
        parts.append(text[pos:match.start()])
        parts.append(Slot(field_name(match.group(1)), match.group(2) or ""))
        pos = match.end()
    parts.append(text[pos:])
    return Prepared(tuple(p for p in parts if p != ""))


# Markdown reads "*" as emphasis, so "Dear *|FNAME|*," would reach the email as "Dear |FNAME|,".
# Tags (and stray halves of tags, which lint reports) are swapped for plain words while such a
# parser reads the text, and swapped back in what it produced.
_HALF = re.compile(r"\*\||\|\*")


def broken_tags(text: str) -> bool:
    """Whether the text holds half a tag ("*|FNAME", "FNAME|*", "*| FNAME |*") once the whole
    tags are taken out."""
    return bool(_HALF.search(TAG.sub("", text)))


@dataclass(frozen=True)
class Shield:
    """The tags taken out of a text, and how to put them back."""

    mark: str
    originals: tuple[str, ...]

    def restore(self, text: str) -> str:
        if not self.originals or self.mark not in text:
            return text
        return re.sub(rf"{self.mark}(\d+)z", lambda m: self.originals[int(m.group(1))], text)


def shield(text: str) -> tuple[str, Shield]:
    """The text with every merge tag, and every stray "*|" or "|*", replaced by a word that no
    markup language treats specially; the Shield restores them."""
    mark = "mergetag"
    while mark in text:
        mark += "q"
    originals: list[str] = []

    def swap(match: re.Match[str]) -> str:
        if "\n" in match.group(0):  # a tag never spans lines; leave it for lint to report
            return _HALF.sub(swap, match.group(0))
        originals.append(match.group(0))
        return f"{mark}{len(originals) - 1}z"

    tags_swapped = TAG.sub(swap, text)
    return _HALF.sub(swap, tags_swapped), Shield(mark, tuple(originals))
