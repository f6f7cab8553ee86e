"""Schema version 10: the opens and clicks of tracked messages, and the links they were for
(see pipeline.engagement.events)."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from pipeline.db.schema import metadata, tracking_events, tracking_links


def v10(conn: Connection) -> None:
    metadata.create_all(conn, tables=[tracking_links, tracking_events], checkfirst=True)
