"""A send's content, frozen: stored in the transaction that fixes its recipients, so every worker,
resume, retry and local-time batch sends the bytes the send started with, whatever happens to
the campaign's folder (or a digest's feed) meanwhile."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.content.build import Content
from pipeline.db.schema import send_content


def freeze(conn: Connection, send_id: int, content: Content) -> Content:
    """Store the send's content unless it has some already; returns what the send says now."""
    stored = frozen(conn, send_id)
    if stored is not None:
        return stored
    conn.execute(send_content.insert().values(send_id=send_id, subject=content.subject, preheader=content.preheader,
                                              html=content.html, text=content.text))
    return content


def replace(conn: Connection, send_id: int, content: Content) -> None:
    """Put new content in place of the stored one (only before anything of the send went out)."""
    conn.execute(send_content.delete().where(send_content.c.send_id == send_id))
    freeze(conn, send_id, content)


def frozen(conn: Connection, send_id: int) -> Content | None:
    row = conn.execute(sa.select(send_content).where(send_content.c.send_id == send_id)).first()
    return Content(row.subject, row.preheader, row.html, row.text) if row else None
