"""Segments: a saved name or an expression, compiled to SQL (see segment_sql), and what they select.

Only subscribed addresses are ever a segment's recipients, whatever the expression says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.segment_sql import compile_segment
from pipeline.audience.subscribers import Subscriber, known_fields, load
from pipeline.db.schema import subscribers


@dataclass(frozen=True)
class Segment:
    label: str  # the saved segment's name, or the expression itself
    expression: str
    where: sa.ColumnElement[bool]

    @property
    def recipients(self) -> sa.ColumnElement[bool]:
        """Only subscribed addresses are ever recipients, whatever the expression says."""
        return sa.and_(subscribers.c.status == "subscribed", self.where)


def resolve(conn: Connection, name_or_expression: str, saved: Mapping[str, str],
            now: datetime | None = None) -> Segment:
    """A saved segment by name, or an expression written out."""
    text = name_or_expression.strip()
    name = text if text in saved else None
    expression = saved[text] if name else text
    return Segment(text, expression, compile_segment(expression, dialect=conn.dialect.name, saved=saved,
                                                     fields=known_fields(conn), now=now, name=name))


def everyone() -> Segment:
    return Segment("everyone", "True", sa.true())


def segment_or_everyone(conn: Connection, name_or_expression: str | None, saved: Mapping[str, str],
                        now: datetime | None = None) -> Segment:
    """A campaign's audience: its segment, or every subscriber when it names none."""
    return resolve(conn, name_or_expression, saved, now=now) if name_or_expression else everyone()


def count(conn: Connection, segment: Segment) -> int:
    query = sa.select(sa.func.count()).select_from(subscribers).where(segment.recipients)
    return int(conn.execute(query).scalar() or 0)


def sample(conn: Connection, segment: Segment, size: int = 10) -> list[Subscriber]:
    rows = conn.execute(sa.select(subscribers).where(segment.recipients).order_by(subscribers.c.id)
                        .limit(size)).all()
    return load(conn, rows)
