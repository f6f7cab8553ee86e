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
class Slot:
    field: str
    fallback: str

    def value(self, values: Mapping[str, object], html: bool, defaults: Mapping[str, str] | None) -> str:
        """This slot's text for one recipient: escaped for HTML; fallbacks are already in the part's form."""
        value = values.get(self.field)
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


def prepare(text: str) -> Prepared:
    parts: list[str | Slot] = []
    pos = 0
    for match in TAG.finditer(text):
        parts.append(text[pos:match.start()])
        parts.append(Slot(field_name(match.group(1)), match.group(2) or ""))
        pos = match.end()
    parts.append(text[pos:])
    return Prepared(tuple(p for p in parts if p != ""))
