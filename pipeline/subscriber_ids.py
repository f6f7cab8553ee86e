"""Subscribers looked up by id, as the links in emails and the Message-IDs of bounces name them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.store import subscribers
from pipeline.subscribers import Subscriber, load


def by_id(conn: Connection, subscriber_id: int, *, lock: bool = False) -> Subscriber | None:
    """The subscriber, or None when the id names no one (an erased person).

    With lock, the row stays locked until the transaction ends, so two changes to one subscriber
    (a mail client that sends its one-click POST twice, a bounce import beside the web pages) run
    one after the other on PostgreSQL, each seeing the other's result. SQLite's writing
    transactions already run one at a time, and it has no FOR UPDATE.
    """
    query = sa.select(subscribers).where(subscribers.c.id == subscriber_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return load(conn, [row])[0] if row else None
