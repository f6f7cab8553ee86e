"""Sends: one row per send of a campaign (a one-off campaign has one, a recurring one one per
occurrence), with its state, its segment and its times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from pipeline.db.schema import send_events, sends


@dataclass(frozen=True)
class SendEvent:
    at: datetime
    event: str  # started, paused, resumed, reopened, content-replaced, finished
    detail: str | None


@dataclass(frozen=True)
class SendRow:
    id: int
    campaign: str
    occurrence: str
    state: str
    segment: str | None
    subject: str | None
    scheduled_at: datetime | None
    snapshot_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    local_time: str | None = None  # "09:00" when each reader gets it at that time in their zone
    timezone: str | None = None


def _send_row(row: Any) -> SendRow:
    return SendRow(row.id, row.campaign, row.occurrence, row.state, row.segment, row.subject, row.scheduled_at,
                   row.snapshot_at, row.started_at, row.finished_at, row.local_time, row.timezone)


def find_send(conn: Connection, campaign: str, occurrence: str = "") -> SendRow | None:
    row = conn.execute(sa.select(sends).where(sends.c.campaign == campaign, sends.c.occurrence == occurrence)).first()
    return _send_row(row) if row else None


def all_sends(conn: Connection, campaign: str | None = None) -> list[SendRow]:
    query = sa.select(sends).order_by(sends.c.campaign, sends.c.occurrence)
    if campaign is not None:
        query = query.where(sends.c.campaign == campaign)
    return [_send_row(row) for row in conn.execute(query)]


def create_send(conn: Connection, campaign: str, *, segment: str, subject: str, state: str,
                now: datetime, occurrence: str = "", scheduled_at: datetime | None = None,
                local_time: str | None = None, timezone: str | None = None) -> SendRow:
    """A new send row; if another process made the same one first, that one is returned."""
    try:
        with conn.begin_nested():
            conn.execute(sends.insert().values(
                campaign=campaign, occurrence=occurrence, state=state, segment=segment, subject=subject,
                scheduled_at=scheduled_at, local_time=local_time, timezone=timezone, created_at=now,
                updated_at=now))
    except IntegrityError:
        pass
    found = find_send(conn, campaign, occurrence)
    assert found is not None
    return found


def set_send_state(conn: Connection, send_id: int, state: str, now: datetime, **extra: Any) -> None:
    conn.execute(sends.update().where(sends.c.id == send_id).values(state=state, updated_at=now, **extra))


# Built once: a sender asks before every claim, and building the statement cost more than running it.
_STATE = sa.select(sends.c.state).where(sends.c.id == sa.bindparam("send_id"))


def state_of(conn: Connection, send_id: int) -> str | None:
    return conn.execute(_STATE, {"send_id": send_id}).scalar()


def mark_snapshot(conn: Connection, send_id: int, now: datetime) -> bool:
    """Record that the send's recipients are fixed now; False if they already were."""
    fresh = conn.execute(sends.update().where(sends.c.id == send_id, sends.c.snapshot_at.is_(None))
                         .values(snapshot_at=now, started_at=now, updated_at=now))
    if fresh.rowcount:
        record(conn, send_id, "started", now)
    return bool(fresh.rowcount)


def mark_finished(conn: Connection, send_id: int, now: datetime) -> None:
    done = conn.execute(sends.update().where(sends.c.id == send_id, sends.c.state.in_(["sending", "scheduled"]))
                        .values(state="sent", finished_at=now, updated_at=now))
    if done.rowcount:
        record(conn, send_id, "finished", now)


def delete(conn: Connection, send_id: int) -> None:
    conn.execute(sends.delete().where(sends.c.id == send_id))


def send_exists(conn: Connection, send_id: int) -> bool:
    return conn.execute(sa.select(sends.c.id).where(sends.c.id == send_id)).first() is not None


def record(conn: Connection, send_id: int, event: str, now: datetime, detail: str | None = None) -> None:
    """Note what happened to a send, for `campaign status`'s history."""
    conn.execute(send_events.insert().values(send_id=send_id, event=event, detail=detail, created_at=now))


def history(conn: Connection, send_id: int) -> list[SendEvent]:
    rows = conn.execute(sa.select(send_events).where(send_events.c.send_id == send_id)
                        .order_by(send_events.c.created_at, send_events.c.id))
    return [SendEvent(row.created_at, row.event, row.detail) for row in rows]


def reopen(conn: Connection, send_id: int, now: datetime, detail: str) -> bool:
    """A finished send back to `sending`, for rows deliberately queued again; False if it was not finished."""
    done = conn.execute(sends.update().where(sends.c.id == send_id, sends.c.state == "sent")
                        .values(state="sending", finished_at=None, updated_at=now))
    if done.rowcount:
        record(conn, send_id, "reopened", now, detail)
    return bool(done.rowcount)
