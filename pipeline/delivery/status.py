"""`campaign status`: where each send stands, what it says, and what happened to it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.db.schema import deliveries, subscribers
from pipeline.delivery.bounces.intake import bounce_counts
from pipeline.delivery.frozen import frozen
from pipeline.delivery.ledger import TASK_MARK, counts
from pipeline.delivery.sends import all_sends, history
from pipeline.errors import SendError

RECENT = timedelta(minutes=1)  # the window of each sender's recent throughput


def failures(conn: Connection, send_id: int, limit: int = 50) -> list[tuple[str, str, str]]:
    """(address, state, the server's reply) for failed, unknown and retrying deliveries."""
    query = (sa.select(subscribers.c.email, deliveries.c.state, deliveries.c.error)
             .select_from(deliveries.outerjoin(subscribers, subscribers.c.id == deliveries.c.subscriber_id))
             .where(deliveries.c.send_id == send_id, deliveries.c.error.is_not(None),
                    deliveries.c.state.in_(["failed", "unknown", "queued"]))
             .order_by(deliveries.c.id).limit(limit))
    return [(email or "(erased)", state, error) for email, state, error in conn.execute(query)]


class Throughput(NamedTuple):
    """What one sending process (host:pid) sent of a send: in all, and since a given instant."""

    worker: str
    sent: int
    first: datetime
    last: datetime
    recent: int
    task: bool  # a `campaign worker` process, rather than a command sending in its own process


def throughput(conn: Connection, send_id: int, since: datetime) -> list[Throughput]:
    """Sent deliveries grouped by the process that sent them (host:pid), busiest first; `recent`
    counts those sent at or after `since`."""
    recent = sa.func.sum(sa.case((deliveries.c.sent_at >= since, 1), else_=0))
    rows = conn.execute(sa.select(deliveries.c.worker, sa.func.count(), sa.func.min(deliveries.c.sent_at),
                                  sa.func.max(deliveries.c.sent_at), recent)
                        .where(deliveries.c.send_id == send_id, deliveries.c.state == "sent",
                               deliveries.c.worker.is_not(None), deliveries.c.sent_at.is_not(None))
                        .group_by(deliveries.c.worker))
    merged: dict[str, Throughput] = {}
    for worker, sent, first, last, late in rows:
        host, pid, run = (worker.split(":") + ["", ""])[:3]  # a sender's slots are host:pid:run:n
        process = f"{host}:{pid}"
        before = merged.get(process)
        if before is None:
            merged[process] = Throughput(process, int(sent), first, last, int(late or 0), run.startswith(TASK_MARK))
        else:
            merged[process] = before._replace(sent=before.sent + int(sent), first=min(before.first, first),
                                              last=max(before.last, last), recent=before.recent + int(late or 0))
    return sorted(merged.values(), key=lambda t: (-t.sent, t.worker))


def _sender(t: Throughput) -> dict[str, object]:
    span = (t.last - t.first).total_seconds()
    return {"worker": t.worker, "campaign_worker": t.task, "sent": t.sent, "first_sent_at": t.first,
            "last_sent_at": t.last, "per_second": round(t.sent / span, 1) if span > 0 else None,
            "last_minute": t.recent}


def status(store: Store, slug: str | None = None) -> list[dict[str, object]]:
    """Each send's state, its frozen subject and content hash, counts per delivery state, bounces
    and complaints (at the SMTP dialogue or reported later), times, its history, failures with
    the server's replies, and what each sending process (host:pid) sent and how fast."""
    out: list[dict[str, object]] = []
    since = utcnow() - RECENT
    with store.reading() as conn:
        reported = bounce_counts(conn)
        for send in all_sends(conn, slug):
            content = frozen(conn, send.id)
            out.append({
                "campaign": send.campaign,
                "occurrence": send.occurrence or None,
                "state": send.state,
                "subject": content.subject if content else send.subject,
                "content": content.digest[:12] if content else None,
                "scheduled_at": send.scheduled_at,
                "started_at": send.started_at,
                "finished_at": send.finished_at,
                "counts": counts(conn, send.id),
                "bounces": reported.get(send.id, {"hard": 0, "soft": 0, "complaint": 0}),
                "history": [{"at": e.at, "event": e.event, "detail": e.detail} for e in history(conn, send.id)],
                "failures": [{"email": e, "state": s, "reply": r} for e, s, r in failures(conn, send.id)],
                "workers": [_sender(t) for t in throughput(conn, send.id, since)],
            })
    if slug is not None and not out:
        raise SendError(f"campaign {slug!r} has not been sent or scheduled yet")
    return out
