"""Bounces and complaints: recording imported reports and suppressing the addresses they name.

A hard bounce suppresses its address at once (status bounced) and a complaint marks it
complained; soft bounces are counted, once per send, and suppress when the count reaches
[bounces] soft_limit. Each report is matched to a subscriber by the Message-ID of the message
that bounced, which also names the send, and otherwise by the recipient address.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.subscribers import Subscriber, by_id, find, set_status
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.db.schema import bounces
from pipeline.delivery.bounces.reports import (
    COMPLAINT,
    HARD,
    MAX_DIAGNOSTIC,
    SOFT,
    Event,
    Report,
    read_reports,
    status_code,
)
from pipeline.delivery.message_ids import MessageRef, parse_message_id
from pipeline.delivery.sends import send_exists

# Remote servers quote the address they refused; once the person is erased it must not linger here.
_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")


@dataclass
class ImportCounts:
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    suppressed: int = 0  # subscribers whose status changed to bounced or complained
    unmatched: int = 0  # of the bounces and complaints above, those naming no subscriber
    not_reports: int = 0  # messages (or CSV rows) with no bounce or complaint in them
    already_imported: int = 0  # reports recorded by an earlier import

    def summary(self) -> str:
        return (f"hard {self.hard}, soft {self.soft}, complaints {self.complaints}, suppressed {self.suppressed}, "
                f"unmatched {self.unmatched}, not a report {self.not_reports}, "
                f"already imported {self.already_imported}")


def redact(diagnostic: str | None) -> str | None:
    if not diagnostic:
        return None
    return _ADDRESS.sub("[address]", diagnostic)[:MAX_DIAGNOSTIC]


def soft_bounced_sends(conn: Connection, subscriber_id: int) -> int:
    """How many sends soft-bounced for this subscriber. A message's "delayed" warnings and its
    final failure count once; a soft bounce that names no send counts on its own."""
    mine = sa.and_(bounces.c.subscriber_id == subscriber_id, bounces.c.kind == SOFT)
    with_send = sa.select(sa.func.count(sa.distinct(bounces.c.send_id))).where(mine)
    without = sa.select(sa.func.count()).where(mine, bounces.c.send_id.is_(None))
    return int(conn.execute(with_send).scalar() or 0) + int(conn.execute(without).scalar() or 0)


class _Recorder:
    """Records reports inside one transaction, counting what happened."""

    def __init__(self, conn: Connection, secret: str, soft_limit: int) -> None:
        self.conn = conn
        self.secret = secret
        self.soft_limit = soft_limit
        self.counts = ImportCounts()

    def add(self, report: Report) -> None:
        if not report.events:  # other mail, or a report of delivery or of wanted mail
            self.counts.not_reports += 1
            return
        keys = [event.key for event in report.events]
        known = set(self.conn.execute(sa.select(bounces.c.report_key).where(bounces.c.report_key.in_(keys))).scalars())
        if known.issuperset(keys):
            self.counts.already_imported += 1
            return
        for event in report.events:
            if event.key not in known:
                self._record(report, event)

    def _match(self, event: Event) -> tuple[Subscriber | None, MessageRef | None]:
        ref = parse_message_id(event.message_id, self.secret) if event.message_id else None
        subscriber = by_id(self.conn, ref.subscriber_id, lock=True) if ref else None
        if subscriber is None and event.recipient:
            found = find(self.conn, event.recipient)
            subscriber = by_id(self.conn, found.id, lock=True) if found else None
        return subscriber, ref

    def _send_id(self, ref: MessageRef | None) -> int | None:
        if ref is None:
            return None
        return ref.send_id if send_exists(self.conn, ref.send_id) else None

    def _record(self, report: Report, event: Event) -> None:
        subscriber, ref = self._match(event)
        send_id = self._send_id(ref)
        now = utcnow()
        # Counted as `campaign status` counts: a recipient once per send and kind, so a message's
        # "delayed" warnings and its final failure are one soft bounce, in this import or an earlier one.
        first = send_id is None or subscriber is None or self.conn.execute(sa.select(bounces.c.id).where(
            bounces.c.send_id == send_id, bounces.c.subscriber_id == subscriber.id, bounces.c.kind == event.kind,
        ).limit(1)).first() is None
        self.conn.execute(bounces.insert().values(
            report_key=event.key, subscriber_id=subscriber.id if subscriber else None, send_id=send_id,
            kind=event.kind, status=event.status, diagnostic=redact(event.diagnostic), source=report.source[:500],
            received_at=event.received_at or now, created_at=now,
        ))
        if first:
            self.counts.hard += event.kind == HARD
            self.counts.soft += event.kind == SOFT
            self.counts.complaints += event.kind == COMPLAINT
        if subscriber is None:
            self.counts.unmatched += 1
            return
        detail: dict[str, object] = {"kind": event.kind, "status": event.status, "send": send_id,
                                     "campaign": ref.campaign if ref else None}
        status: str | None
        if event.kind == COMPLAINT:
            status = "complained"
        elif event.kind == HARD:
            status = "bounced"
        else:
            detail["soft_bounced_sends"] = count = soft_bounced_sends(self.conn, subscriber.id)
            status = "bounced" if count >= self.soft_limit else None
        # Only a subscribed address changes: an unsubscribed or bounced one is already never mailed,
        # and its status keeps saying why.
        if status and subscriber.status == "subscribed":
            set_status(self.conn, subscriber, status, f"bounces:{report.source}"[:200], json.dumps(detail))
            self.counts.suppressed += 1


def record_refusal(conn: Connection, send_id: int, subscriber_id: int, delivery_id: int, reply: str,
                   now: datetime) -> bool:
    """A mailbox the receiving server refused for good during the SMTP dialogue (550 to RCPT):
    recorded as a hard bounce of the send, like a reported one, and the address suppressed.
    Returns whether the subscriber's status changed."""
    conn.execute(bounces.insert().values(
        report_key=f"smtp:{send_id}:{delivery_id}", subscriber_id=subscriber_id, send_id=send_id, kind=HARD,
        status=status_code(reply), diagnostic=redact(reply), source="smtp", received_at=now, created_at=now))
    subscriber = by_id(conn, subscriber_id)
    return subscriber is not None and set_status(conn, subscriber, "bounced", "smtp", reply)


def record_reports(store: Store, reports: Iterable[Report], secret: str, soft_limit: int,
                   dry_run: bool = False) -> ImportCounts:
    """Record the reports in one transaction; with dry_run, count what would happen and roll back."""
    with store.transaction(rollback=dry_run) as conn:
        recorder = _Recorder(conn, secret, soft_limit)
        for report in reports:
            recorder.add(report)
    return recorder.counts


def import_bounces(store: Store, path: Path, secret: str, soft_limit: int, dry_run: bool = False) -> ImportCounts:
    """Read every report under path (all of them, before the database is touched) and record them."""
    return record_reports(store, read_reports(path), secret, soft_limit, dry_run)


def bounce_counts(conn: Connection) -> dict[int, dict[str, int]]:
    """Per send id: how many recipients hard-bounced, soft-bounced and complained.

    A recipient counts once per kind however many reports name them (a message's "delayed"
    warnings and its final failure); an erased recipient's rows each count.
    """
    query = (sa.select(bounces.c.send_id, bounces.c.kind, bounces.c.subscriber_id, sa.func.count())
             .where(bounces.c.send_id.is_not(None))
             .group_by(bounces.c.send_id, bounces.c.kind, bounces.c.subscriber_id))
    counts: dict[int, dict[str, int]] = {}
    for send_id, kind, subscriber_id, rows in conn.execute(query):
        per_send = counts.setdefault(send_id, {HARD: 0, SOFT: 0, COMPLAINT: 0})
        per_send[kind] += 1 if subscriber_id is not None else rows
    return counts
