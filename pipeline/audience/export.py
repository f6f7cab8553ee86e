"""Exports that an import reads back unchanged: CSV for spreadsheets, JSON Lines for programs."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy.engine import Connection

from pipeline.audience.segments import Segment
from pipeline.audience.subscribers import Subscriber, iterate, known_fields
from pipeline.audience.values import field_value

COLUMNS = ("email", "first_name", "last_name", "tags", "timezone", "status", "consent_source", "consent_at",
           "signed_up")


def _time(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _flat(value: Any) -> bool:
    """A value a CSV cell carries exactly: the import reads its text back as the same value."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool) and field_value(str(value)) == value


def as_dict(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "email": subscriber.email, "first_name": subscriber.first_name, "last_name": subscriber.last_name,
        "tags": list(subscriber.tags), "timezone": subscriber.timezone, "status": subscriber.status,
        "consent_source": subscriber.consent_source, "consent_at": _time(subscriber.consent_at) or None,
        "signed_up": _time(subscriber.signed_up), "fields": dict(subscriber.fields),
    }


def _subscribers(conn: Connection, segment: Segment | None) -> Iterator[Subscriber]:
    return iterate(conn, segment.where if segment else None)


def write_csv(conn: Connection, out: TextIO, segment: Segment | None = None) -> int:
    """Custom fields become columns; values a cell cannot carry exactly go into `attributes` (JSON)."""
    names = known_fields(conn)
    writer = csv.writer(out)
    writer.writerow([*COLUMNS, *names, "attributes"])
    count = 0
    for subscriber in _subscribers(conn, segment):
        row = as_dict(subscriber)
        cells = [row[c] or "" for c in COLUMNS]
        cells[COLUMNS.index("tags")] = ",".join(subscriber.tags)
        exact = {k: v for k, v in subscriber.fields.items() if _flat(v)}
        rest = {k: v for k, v in subscriber.fields.items() if k not in exact}
        cells += [str(exact[n]) if n in exact else "" for n in names]
        cells.append(json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else "")
        writer.writerow(cells)
        count += 1
    return count


def write_jsonl(conn: Connection, out: TextIO, segment: Segment | None = None) -> int:
    count = 0
    for subscriber in _subscribers(conn, segment):
        out.write(json.dumps(as_dict(subscriber), ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count
