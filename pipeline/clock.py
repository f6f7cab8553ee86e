"""Instants: always aware and in UTC inside the program, in one format wherever a person reads them."""

from __future__ import annotations

from datetime import UTC, datetime

HUMAN_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """An aware UTC instant; a naive time is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time ("Z" allowed; without an offset, UTC) as an aware UTC instant.
    Raises ValueError for anything else."""
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def sql_time(value: datetime) -> str:
    """An instant as the text both databases take for a timestamp, and SQLite stores:
    "2026-03-01 09:30:00.000000" in UTC. Bulk inserts send this instead of datetimes."""
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).replace(tzinfo=None).isoformat(
        " ", "microseconds")


def from_sql_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def human(moment: datetime | None) -> str:
    """An instant as every command prints it for people: "2026-12-01 17:00:00 UTC", or "-"."""
    return as_utc(moment).strftime(HUMAN_FORMAT) if moment else "-"
