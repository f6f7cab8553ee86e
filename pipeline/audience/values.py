"""What a subscriber's values may be: one line of text, tags, custom field names and cells, time
zones. The import, the web signup form and `subscribers add` all clean their input here."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from pipeline.errors import SubscriberError

BUILTIN_FIELDS = ("email", "first_name", "last_name", "tags", "status", "timezone", "signed_up")
_FIELD_NAME = re.compile(r"^[^\W\d]\w*$")
_BAD_TEXT = re.compile(r"[\x00-\x1f\x7f]+")
_NUMBER = re.compile(r"^-?(?:0|[1-9]\d{0,14})(?:\.\d+)?$")
MAX_TAG = 100
MAX_TEXT = 200  # db.schema's first_name, last_name and consent_source


def clean_text(value: str | None) -> str | None:
    """One line of text: control characters (CR, LF, NUL...) become spaces; empty is None."""
    if value is None:
        return None
    cleaned = " ".join(_BAD_TEXT.sub(" ", value).split())
    return cleaned or None


def width_problem(field: str, value: str | None) -> str | None:
    """Why a first name, last name or consent source cannot be kept, or None. Their columns hold
    MAX_TEXT characters: PostgreSQL refuses more, and SQLite would keep what PostgreSQL could not
    take from it (a list moved from one to the other would fail)."""
    if value is not None and len(value) > MAX_TEXT:
        return f"{field} is {len(value):,} characters long (the limit is {MAX_TEXT})"
    return None


def clean_tag(tag: str) -> str:
    cleaned = clean_text(tag) or ""
    if not cleaned:
        raise SubscriberError("a tag cannot be empty")
    if "," in cleaned or len(cleaned) > MAX_TAG:
        raise SubscriberError(f"tag {cleaned[:40]!r} must be at most {MAX_TAG} characters, without commas")
    return cleaned


def field_name(header: str) -> str:
    """A column header as a custom field name: "Birth Year" -> birth_year."""
    name = re.sub(r"\W+", "_", header.strip().lower()).strip("_")
    if name and name[0].isdigit():
        name = f"f_{name}"
    return name


def field_value(text: str) -> Any:
    """A cell as stored: numbers as numbers (but not "02134"), everything else as text."""
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    return text


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {zone.lower(): zone for zone in available_timezones()}


def canonical_timezone(value: str) -> str | None:
    """The IANA name for value (any case), or None when there is no such zone."""
    return _zones().get(value.strip().lower())


def validate_field_name(name: str) -> str:
    if not _FIELD_NAME.match(name) or name in BUILTIN_FIELDS:
        raise SubscriberError(
            f"{name!r} cannot be a custom field name: use letters, digits and '_', not starting with a "
            f"digit, and none of {', '.join(BUILTIN_FIELDS)}"
        )
    return name
