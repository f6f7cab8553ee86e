"""What one cell of an import file becomes: a time as the database stores it, cleaned text,
tags, custom fields as stored JSON. Each runs once per cell of a million-row file, so the values
that repeat across a list (names, tags, field values) are worked out once each."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from pipeline.audience.consent import clean_ip
from pipeline.audience.values import canonical_timezone, clean_tag, clean_text, field_name, field_value
from pipeline.clock import parse_utc, sql_time
from pipeline.errors import SubscriberError


class Reject(Exception):
    """This row goes to the rejects file with the message as its reason."""


to_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps without its per-call set-up


def stored_time(text: str) -> str:
    """An import's time as the database stores it; without an offset (Mailchimp's
    "2025-03-14 09:30:00") it is UTC already. Raises ValueError for what is not a time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = parse_utc(text)  # what fromisoformat alone does not take
    if moment.tzinfo is None:  # a million rows have two each: straight to text, no time zone arithmetic
        if len(text) == 19 and text[4] == text[7] == "-" and text[13] == text[16] == ":":  # 2025-03-14 09:30:00
            return f"{text[:10]} {text[11:]}.000000"
        return moment.isoformat(" ", "microseconds")
    return sql_time(moment)


# Names, tags and field values repeat a great deal across a list; each distinct one is worked
# out once. (lru_cache does not keep exceptions, so a bad value is reported on every row.)
clean = lru_cache(maxsize=65536)(clean_text)
clean_ip_once = lru_cache(maxsize=65536)(clean_ip)
timezone_once = lru_cache(maxsize=4096)(canonical_timezone)


@lru_cache(maxsize=65536)
def _field_json(name: str, cell: str) -> str:
    """One custom field as it appears in the stored JSON object: '"city": "Portland"'."""
    return f"{to_json(name)}: {to_json(field_value(cell.replace(chr(0), '') if chr(0) in cell else cell))}"


@lru_cache(maxsize=65536)
def custom_json(names: tuple[str, ...], cells: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """A row's custom fields as the stored JSON object, and the names it has; rows of a list
    often repeat the same few values (a city, a rating), so each combination is worked out once."""
    parts = []
    present = []
    for name, cell in zip(names, cells):
        if value := cell.strip():
            parts.append(_field_json(name, value))
            present.append(name)
    # what to_json() makes of the same dict
    return ("{" + ", ".join(parts) + "}" if parts else "{}"), tuple(present)


@lru_cache(maxsize=4096)
def tags_of(cell: str) -> frozenset[str]:
    # Mailchimp quotes each tag ("a","b"); plain files write a, b.
    if '"' not in cell:
        parts = cell.split(",")
    elif cell[0] == cell[-1] == '"' and '""' not in cell and len(cell) > 1:
        parts = cell[1:-1].split('","')
    else:
        parts = next(csv.reader([cell], skipinitialspace=True))
    try:
        return frozenset(clean_tag(t) for t in parts if t.strip())
    except SubscriberError as exc:
        raise Reject(str(exc)) from None


def attributes_of(text: str) -> dict[str, Any]:
    """listmonk keeps custom fields as one JSON object; their types are kept as they are."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise Reject("attributes is not a JSON object")
    return {field_name(str(k)) or "attribute": v for k, v in parsed.items() if v not in (None, "")}
