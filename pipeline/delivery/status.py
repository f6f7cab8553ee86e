"""`campaign status`: where each send stands, what it says, and what happened to it."""

from __future__ import annotations

from datetime import timedelta

from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.delivery.bounces.intake import bounce_counts
from pipeline.delivery.frozen import frozen
from pipeline.delivery.ledger import Throughput, counts, failures, throughput
from pipeline.delivery.sends import all_sends, history
from pipeline.errors import SendError

RECENT = timedelta(minutes=1)  # the window of each sender's recent throughput


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
