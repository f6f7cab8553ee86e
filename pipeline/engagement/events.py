"""The tracking tables: the opens and clicks of tracked messages, and the links they were for.

Only this module writes them. Recording is idempotent: an event's key is a hash of what it is
(kind, send, subscriber, link, user agent class and the second it came in), so the same hit
twice in one second (a double click, a client fetching the pixel again, a batch written twice
after a lost connection) is one row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pipeline.db.schema import sends, tracking_events, tracking_links
from pipeline.engagement.agents import BURST, SCANNER
from pipeline.engagement.links import bare

OPEN, CLICK = "open", "click"


@dataclass(frozen=True)
class Event:
    kind: str  # OPEN or CLICK
    send_id: int
    subscriber_id: int
    link: int  # the link's number; 0 for an open
    at: datetime
    since_sent: int | None  # seconds from the message leaving to this event
    agent: str
    machine: bool
    url: str | None = None  # where a click led

    @property
    def key(self) -> int:
        what = f"{self.kind}|{self.send_id}|{self.subscriber_id}|{self.link}|{self.agent}|{int(self.at.timestamp())}"
        return int.from_bytes(hashlib.blake2b(what.encode("ascii"), digest_size=8).digest(), "big") >> 1


def _insert(conn: Connection, table: sa.Table, keys: list[str]) -> sa.Insert:
    """INSERT that leaves a row whose `keys` are taken alone, on either database."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=keys)


def record(conn: Connection, events: Sequence[Event]) -> None:
    """Write events (each once, however often it is given) and the links their clicks were for."""
    if not events:
        return
    rows = {e.key: {"key": e.key, "kind": e.kind, "send_id": e.send_id, "subscriber_id": e.subscriber_id,
                    "link": e.link, "at": e.at, "since_sent": e.since_sent, "agent": e.agent, "machine": e.machine}
            for e in events}
    conn.execute(_insert(conn, tracking_events, ["key"]), list(rows.values()))
    links = {(e.send_id, e.link): e.url for e in events if e.kind == CLICK and e.url}
    if links:
        conn.execute(_insert(conn, tracking_links, ["send_id", "number"]),
                     [{"send_id": s, "number": n, "url": u, "bare": bare(u)} for (s, n), u in links.items()])
    mark_bursts(conn, {(e.send_id, e.subscriber_id) for e in events if e.kind == CLICK})


def mark_bursts(conn: Connection, messages: set[tuple[int, int]]) -> int:
    """Mark as a scanner's the clicks of each of these messages (send, subscriber) that came with a
    click on another of its links within BURST; returns how many were marked."""
    if not messages:
        return 0
    found: dict[tuple[int, int], list[tuple[datetime, int, int]]] = {}
    pairs = sorted(messages)
    for start in range(0, len(pairs), 400):
        chunk = pairs[start:start + 400]
        query = sa.select(tracking_events.c.id, tracking_events.c.send_id, tracking_events.c.subscriber_id,
                          tracking_events.c.link, tracking_events.c.at).where(
            tracking_events.c.kind == CLICK,
            tracking_events.c.subscriber_id.in_({s for _, s in chunk}),
            tracking_events.c.send_id.in_({s for s, _ in chunk}))
        for row in conn.execute(query):
            if (row.send_id, row.subscriber_id) in messages:
                found.setdefault((row.send_id, row.subscriber_id), []).append((row.at, row.link, row.id))
    machine: set[int] = set()
    for clicks in found.values():
        clicks.sort()
        for i, (at, link, _) in enumerate(clicks):
            near = [c for c in clicks[i:] if c[0] - at <= BURST]
            if len({c[1] for c in near}) > 1:
                machine.update(c[2] for c in near)
    ids = sorted(machine)
    for start in range(0, len(ids), 500):
        conn.execute(tracking_events.update().where(tracking_events.c.id.in_(ids[start:start + 500]))
                     .values(machine=True, agent=SCANNER))
    return len(ids)


def forget(conn: Connection, subscriber_id: int) -> int:
    """Delete every event of a subscriber (their erasure); returns how many."""
    done = conn.execute(tracking_events.delete().where(tracking_events.c.subscriber_id == subscriber_id))
    return int(done.rowcount or 0)


def events_of(conn: Connection, subscriber_id: int | None = None,
              send_ids: Iterable[int] | None = None) -> list[Event]:
    """The events recorded, oldest first (for tests, checks and exports), of one subscriber or some sends."""
    query = sa.select(tracking_events, tracking_links.c.url).select_from(tracking_events.outerjoin(
        tracking_links, sa.and_(tracking_links.c.send_id == tracking_events.c.send_id,
                                tracking_links.c.number == tracking_events.c.link)))
    if subscriber_id is not None:
        query = query.where(tracking_events.c.subscriber_id == subscriber_id)
    if send_ids is not None:
        query = query.where(tracking_events.c.send_id.in_(list(send_ids)))
    rows = conn.execute(query.order_by(tracking_events.c.at, tracking_events.c.id))
    return [Event(r.kind, r.send_id, r.subscriber_id, r.link, r.at, r.since_sent, r.agent, r.machine,
                  r.url if r.kind == CLICK else None) for r in rows]


def engaged(kind: str, campaign: str, url: str | None = None, machine: bool = False) -> sa.Select[tuple[int]]:
    """The ids of subscribers who opened (or clicked, or clicked `url`) any send of a campaign:
    for segment expressions. Human events only unless `machine`."""
    query = sa.select(tracking_events.c.subscriber_id).where(
        tracking_events.c.send_id.in_(sa.select(sends.c.id).where(sends.c.campaign == campaign)),
        tracking_events.c.kind == kind)
    if not machine:
        query = query.where(tracking_events.c.machine == sa.false())
    if url is not None:
        query = query.where(sa.exists().where(
            tracking_links.c.send_id == tracking_events.c.send_id, tracking_links.c.number == tracking_events.c.link,
            sa.or_(tracking_links.c.url == url, tracking_links.c.bare == url)))
    return query
