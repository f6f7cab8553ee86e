"""Deliveries: one row per (send, subscriber), and the state changes that make sending exactly-once.

    queued --claim--> queued+lease --begin--> sending --250--> sent
                                                  |--4xx / dropped--> queued (due later)
                                                  |--5xx--> failed
    a subscriber no longer subscribed at claim or begin --> skipped
    sending with an expired lease (the sender died) --> unknown: never resent by itself

A claim only leases rows; a row becomes `sending` in the same transaction that records the
previous message as sent, just before its own message goes out. So a sender killed at any
moment leaves at most the one message it was transmitting as `unknown`, and nothing else.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.subscribers import display_name, merge_values
from pipeline.audience.unsubscribe_journal import apply_pending_unsubscribes
from pipeline.db.raw import run_sql
from pipeline.db.schema import (
    DELIVERY_STATES,
    UTCDateTime,
    deliveries,
    sends,
    subscribers,
)
from pipeline.delivery.sends import SendRow, mark_finished, mark_snapshot

if TYPE_CHECKING:  # a segment is only passed through here; segments compile with received_by below
    from pipeline.audience.segments import Segment

LEASE = timedelta(minutes=10)


class Claimed(NamedTuple):
    """A leased delivery and what its message needs to know about the subscriber (a tuple: made
    for every message, and cheap to make)."""

    delivery_id: int
    subscriber_id: int
    email: str
    first_name: str | None
    last_name: str | None
    fields: dict[str, Any]
    timezone: str | None
    attempts: int

    def values(self) -> dict[str, object]:
        return merge_values(self.fields, self.email, self.first_name, self.last_name, self.timezone)

    @property
    def name(self) -> str | None:
        return display_name(self.first_name, self.last_name)


def snapshot(conn: Connection, send: SendRow, segment: Segment, now: datetime, due_at: datetime | None = None) -> int:
    """Fix the recipients: one queued delivery per subscribed member of the segment, in one statement.

    Does nothing if the send already has its snapshot, so two starters cannot make two.
    """
    if not mark_snapshot(conn, send.id, now):
        return 0
    chosen = sa.select(
        sa.literal(send.id, sa.Integer), subscribers.c.id, sa.literal("queued", sa.String),
        sa.literal(due_at or now, UTCDateTime), sa.literal(0, sa.Integer), sa.literal(now, UTCDateTime),
    ).where(segment.recipients)
    result = conn.execute(deliveries.insert().from_select(
        ["send_id", "subscriber_id", "state", "due_at", "attempts", "updated_at"], chosen))
    return int(result.rowcount or 0)


TASK_MARK = "w"  # begins the run part of a `campaign worker` task's name; other runs' are hex


def worker_name(suffix: str) -> str:
    """host:pid:suffix, so a later run on the same host can tell when a worker's process is gone."""
    return f"{socket.gethostname()}:{os.getpid()}:{suffix}"


def _dead(worker: str) -> bool:
    """A worker of this host whose process no longer runs: its leases need not be waited out."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover(conn: Connection, send_id: int, now: datetime) -> int:
    """Deal with rows of senders that died.

    Rows left `sending` (lease expired, or its process gone) may or may not have been sent:
    they become `unknown` and are never resent by themselves. Rows a dead sender had only
    leased go back to the queue. Returns how many became unknown.
    """
    # Every term names lease_until, so the small index of leased rows answers, not a scan of the send.
    held = conn.execute(sa.select(deliveries.c.worker).distinct().where(
        deliveries.c.send_id == send_id, deliveries.c.lease_until >= now, deliveries.c.worker.is_not(None))).scalars()
    dead = [w for w in held if _dead(w)]
    gone = sa.or_(deliveries.c.lease_until < now, deliveries.c.worker.in_(dead)) if dead else \
        deliveries.c.lease_until < now
    result = conn.execute(deliveries.update().where(
        deliveries.c.send_id == send_id, deliveries.c.lease_until.is_not(None), deliveries.c.state == "sending", gone,
    ).values(state="unknown", worker=None, lease_until=None, updated_at=now,
             error="the sender stopped while this message was being sent; it may or may not have arrived"))
    if dead:
        conn.execute(deliveries.update().where(
            deliveries.c.send_id == send_id, deliveries.c.lease_until.is_not(None), deliveries.c.state == "queued",
            deliveries.c.worker.in_(dead),
        ).values(worker=None, lease_until=None, updated_at=now))
    return int(result.rowcount or 0)


# Built once: a claim runs for every batch, and building these costs more than running them.
_QUEUED = (
    # A literal, not a parameter: only then can the database use the queued-rows index.
    deliveries.c.send_id == sa.bindparam("send_id"), deliveries.c.state == sa.literal_column("'queued'"),
)
_FREE_AND_DUE = sa.and_(
    deliveries.c.due_at <= sa.bindparam("now", type_=UTCDateTime),
    sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < sa.bindparam("now", type_=UTCDateTime)),
)
_CANDIDATES = (
    sa.select(deliveries.c.id).where(*_QUEUED, _FREE_AND_DUE)
    .order_by(deliveries.c.due_at, deliveries.c.id).limit(sa.bindparam("limit")).with_for_update(skip_locked=True)
)
# The same among one batch's rows only; the ones its holder has were due when they were put in
# its name, by the clock of the machine that did (which may run a little ahead of this one's).
_BATCH_CANDIDATES = (
    sa.select(deliveries.c.id).where(*_QUEUED, deliveries.c.id.in_(sa.bindparam("batch", expanding=True)),
                                     sa.or_(deliveries.c.worker == sa.bindparam("holder"), _FREE_AND_DUE))
    .order_by(deliveries.c.due_at, deliveries.c.id).limit(sa.bindparam("limit")).with_for_update(skip_locked=True)
)
_LEASE = deliveries.update().where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True))).values(
    lease_until=sa.bindparam("lease", type_=UTCDateTime), worker=sa.bindparam("worker"),
    updated_at=sa.bindparam("now", type_=UTCDateTime))
# The leased rows and their subscribers, written out (see db.raw): every claim reads a batch of
# them, and SQLAlchemy's processing of each row and its JSON cost more than the query.
_CLAIMED = ("SELECT d.id, d.attempts, s.id, s.email, s.first_name, s.last_name, s.fields, s.timezone, s.status "
            "FROM deliveries d LEFT OUTER JOIN subscribers s ON s.id = d.subscriber_id "
            "WHERE d.id IN ({}) ORDER BY d.due_at, d.id")


def _fields(value: Any) -> dict[str, Any]:
    """A subscriber's custom fields as the driver gives them: JSON text on SQLite, already a
    dict on PostgreSQL; most readers have none."""
    if isinstance(value, str):
        return json.loads(value) if value != "{}" else {}
    return dict(value or {})


class Batch(NamedTuple):
    """Deliveries handed out together (to a `campaign worker` task), and who holds the ones not yet
    claimed: claims restricted to a batch take only its rows that are free or held by `holder`."""

    ids: tuple[int, ...]
    holder: str


def reserve(conn: Connection, send_id: int, holder: str, limit: int, now: datetime, until: datetime,
            batch: Batch | None = None) -> list[int]:
    """Put up to `limit` due, queued, unheld deliveries (of `batch` only, if given) in `holder`'s
    name until `until`; they stay queued. Returns their ids, oldest due first."""
    if batch is None:
        found = conn.execute(_CANDIDATES, {"send_id": send_id, "now": now, "limit": limit})
    else:
        found = conn.execute(_BATCH_CANDIDATES, {"send_id": send_id, "now": now, "limit": limit,
                                                 "batch": list(batch.ids), "holder": batch.holder})
    ids = list(found.scalars())
    if ids:
        conn.execute(_LEASE, {"ids": ids, "lease": until, "worker": holder, "now": now})
    return ids


def claim(conn: Connection, send_id: int, worker: str, limit: int, now: datetime,
          batch: Batch | None = None) -> tuple[list[Claimed], int]:
    """Lease up to `limit` due deliveries (of `batch` only, if given) to `worker`; ones whose
    subscriber left become skipped. Returns the leased deliveries to send and how many were
    skipped: a batch may be all skipped while more rows wait behind it."""
    apply_pending_unsubscribes(conn)  # on SQLite, unsubscribes the web pages journaled (see there)
    ids = reserve(conn, send_id, worker, limit, now, now + LEASE, batch)
    if not ids:
        return [], 0
    rows = run_sql(conn, _CLAIMED.format(", ".join("?" * len(ids))), *ids).all()
    gone = [delivery for delivery, *_, status in rows if status != "subscribed"]
    if gone:
        skip(conn, gone, now, "not subscribed when its turn came")
    return [Claimed(delivery, subscriber, email, first, last, _fields(fields), zone, attempts)
            for delivery, attempts, subscriber, email, first, last, fields, zone, status in rows
            if status == "subscribed"], len(gone)


def held(conn: Connection, send_id: int, now: datetime) -> int:
    """How many of a send's deliveries someone holds now: reserved for a batch, leased, or on the wire."""
    return int(conn.execute(sa.select(sa.func.count()).where(
        deliveries.c.send_id == send_id, deliveries.c.lease_until >= now)).scalar() or 0)


def skip(conn: Connection, ids: Sequence[int], now: datetime, reason: str) -> None:
    conn.execute(deliveries.update().where(deliveries.c.id.in_(ids)).values(
        state="skipped", worker=None, lease_until=None, error=reason, updated_at=now))


_SEND_ACTIVE = sa.exists().where(sends.c.id == deliveries.c.send_id, sends.c.state == "sending")
# The two statements every message runs, written out: see store.run_sql.
_BEGIN = ("UPDATE deliveries SET state = 'sending', attempts = attempts + 1, lease_until = ?, updated_at = ? "
          "WHERE id = ? AND worker = ? AND state = 'queued' "
          "AND EXISTS (SELECT 1 FROM subscribers WHERE subscribers.id = deliveries.subscriber_id "
          "AND subscribers.status = 'subscribed') "
          "AND EXISTS (SELECT 1 FROM sends WHERE sends.id = deliveries.send_id AND sends.state = 'sending')")
_SENT = ("UPDATE deliveries SET state = 'sent', message_id = ?, sent_at = ?, lease_until = NULL, error = NULL, "
         "updated_at = ? WHERE id = ? AND worker = ? AND state = 'sending'")


def begin_statement(delivery_id: int, worker: str, now: datetime) -> tuple[str, tuple[Any, ...]]:
    """Mark one leased delivery `sending`, just before its message goes out; it matches no row
    if the subscriber left since the claim or the send was paused (see not_started)."""
    return _BEGIN, (now + LEASE, now, delivery_id, worker)


def sent_statement(delivery_id: int, worker: str, message_id: str, now: datetime) -> tuple[str, tuple[Any, ...]]:
    return _SENT, (message_id, now, now, delivery_id, worker)


def not_started(conn: Connection, delivery_id: int, worker: str, now: datetime) -> str:
    """Why begin matched nothing: "paused" (the row is given back, still queued), "skipped", or
    "taken": the lease ran out first and another sender has the row now (or has sent it)."""
    active = conn.execute(sa.select(_SEND_ACTIVE).select_from(deliveries).where(deliveries.c.id == delivery_id)).scalar()
    if not active:
        release(conn, [delivery_id], worker, now)
        return "paused"
    mine = conn.execute(sa.select(deliveries.c.id).where(
        deliveries.c.id == delivery_id, deliveries.c.worker == worker, deliveries.c.state == "queued")).first()
    if mine is None:
        return "taken"
    if conn.execute(_STILL_SUBSCRIBED, {"id": delivery_id}).first() is not None:
        # begin saw the send paused and a resume came before this look: the reader is owed the
        # message, so the row goes back to the queue for the next claim instead of being skipped.
        release(conn, [delivery_id], worker, now)
        return "taken"
    skip(conn, [delivery_id], now, "not subscribed when its turn came")
    return "skipped"


_STILL_SUBSCRIBED = sa.select(deliveries.c.id).join(subscribers, subscribers.c.id == deliveries.c.subscriber_id).where(
    deliveries.c.id == sa.bindparam("id"), subscribers.c.status == "subscribed")


def mark_sent(conn: Connection, delivery_id: int, worker: str, message_id: str, now: datetime) -> None:
    sql, params = sent_statement(delivery_id, worker, message_id, now)
    run_sql(conn, sql, *params)


def _settle(conn: Connection, delivery_id: int, owner: str, now: datetime, **values: Any) -> None:
    """End a delivery `owner` is sending; a row another process recovered meanwhile is left alone."""
    conn.execute(deliveries.update().where(
        deliveries.c.id == delivery_id, deliveries.c.worker == owner, deliveries.c.state == "sending",
    ).values(lease_until=None, updated_at=now, **values))


def retry_later(conn: Connection, delivery_id: int, worker: str, reply: str, due: datetime, now: datetime) -> None:
    _settle(conn, delivery_id, worker, now, state="queued", due_at=due, worker=None, error=reply)


def mark_failed(conn: Connection, delivery_id: int, worker: str, reply: str, now: datetime) -> None:
    _settle(conn, delivery_id, worker, now, state="failed", error=reply)


def mark_unknown(conn: Connection, delivery_id: int, worker: str, reason: str, now: datetime) -> None:
    _settle(conn, delivery_id, worker, now, state="unknown", worker=None, error=reason)


def release(conn: Connection, ids: Iterable[int], worker: str, now: datetime) -> None:
    """Give back leased rows not yet started (a clean stop): they stay queued for the next run."""
    ids = list(ids)
    if ids:
        conn.execute(deliveries.update().where(
            deliveries.c.id.in_(ids), deliveries.c.worker == worker, deliveries.c.state == "queued",
        ).values(lease_until=None, worker=None, updated_at=now))


def requeue(conn: Connection, send_id: int, state: str, now: datetime) -> int:
    """Deliberately send again rows that are `unknown` or `failed` (send --retry-unknown / --retry-failed)."""
    result = conn.execute(deliveries.update().where(deliveries.c.send_id == send_id, deliveries.c.state == state)
                          .values(state="queued", due_at=now, lease_until=None, worker=None, updated_at=now))
    return int(result.rowcount or 0)


def counts(conn: Connection, send_id: int) -> dict[str, int]:
    found = dict.fromkeys(DELIVERY_STATES, 0)
    query = sa.select(deliveries.c.state, sa.func.count()).where(deliveries.c.send_id == send_id).group_by(
        deliveries.c.state)
    found.update({state: int(n) for state, n in conn.execute(query)})
    return found


def pending(conn: Connection, send_id: int) -> tuple[int, datetime | None]:
    """How many deliveries are still to go, and when the next one falls due."""
    row = conn.execute(sa.select(sa.func.count(), sa.func.min(deliveries.c.due_at)).where(
        deliveries.c.send_id == send_id, deliveries.c.state.in_(["queued", "sending"]))).one()
    return int(row[0]), row[1]


def _any_left(conn: Connection, send_id: int) -> bool:
    """Whether a row is still queued or sending, from the indexes of queued and of leased rows (every
    sending row has a lease): every worker's batch ends with this, and must not count a whole send."""
    queued = sa.select(deliveries.c.id).where(*_QUEUED).limit(1)
    sending = sa.select(deliveries.c.id).where(deliveries.c.send_id == send_id, deliveries.c.lease_until.is_not(None),
                                               deliveries.c.state == "sending").limit(1)
    return any(conn.execute(query, {"send_id": send_id}).first() is not None for query in (queued, sending))


def finish_if_done(conn: Connection, send_id: int, now: datetime) -> bool:
    """A send is done when nothing is queued or sending any more."""
    if _any_left(conn, send_id):
        return False
    mark_finished(conn, send_id, now)
    return True


def recipient_zones(conn: Connection, send_id: int) -> list[str | None]:
    """The distinct time zones of a send's recipients (None: readers without one)."""
    return list(conn.execute(sa.select(subscribers.c.timezone).distinct().select_from(
        deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)).where(
        deliveries.c.send_id == send_id)).scalars())


def set_due_by_zone(conn: Connection, send_id: int, instants: Mapping[str | None, datetime]) -> None:
    """Each delivery due at the instant of its reader's zone: one update per zone."""
    for name, moment in instants.items():
        members = sa.select(subscribers.c.id).where(
            subscribers.c.timezone.is_(None) if name is None else subscribers.c.timezone == name)
        conn.execute(deliveries.update().where(deliveries.c.send_id == send_id,
                                               deliveries.c.subscriber_id.in_(members)).values(due_at=moment))


def add_delivery(conn: Connection, send_id: int, subscriber_id: int, due_at: datetime, now: datetime) -> bool:
    """One more recipient of a send under way (a welcome message for a subscriber who just
    confirmed, see delivery.welcome); False if they have a delivery of it already."""
    done = conn.execute(deliveries.insert().from_select(
        ["send_id", "subscriber_id", "state", "due_at", "attempts", "updated_at"],
        sa.select(sa.literal(send_id, sa.Integer), sa.literal(subscriber_id, sa.Integer),
                  sa.literal("queued", sa.String), sa.literal(due_at, UTCDateTime), sa.literal(0, sa.Integer),
                  sa.literal(now, UTCDateTime))
        .where(~sa.exists().where(deliveries.c.send_id == send_id, deliveries.c.subscriber_id == subscriber_id))))
    return bool(done.rowcount)


def received_by(campaign: str) -> sa.Select[tuple[int | None]]:
    """The subscribers a campaign (any of its sends) was delivered to: `received("slug")` in segments."""
    return (sa.select(deliveries.c.subscriber_id).select_from(deliveries.join(sends, sends.c.id == deliveries.c.send_id))
            .where(sends.c.campaign == campaign, deliveries.c.state == "sent"))
