"""Sending a campaign: check it, fix its recipients once, run the workers, report.

`campaign send`, `send-due` and the scheduler all come through here, so a campaign is sent the
same way whoever starts it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pipeline.audience.recipients import lookup, sample_recipient
from pipeline.audience.segments import Segment, count, segment_or_everyone
from pipeline.audience.tokens import Tokens
from pipeline.clock import utcnow
from pipeline.content.build import Build, Content, build_campaign
from pipeline.db.engine import Store
from pipeline.delivery.bounces.intake import bounce_counts
from pipeline.delivery.ledger import (
    counts,
    failures,
    finish_if_done,
    pending,
    recover,
    requeue,
    snapshot,
)
from pipeline.delivery.loop import Sender, SendOptions, SendReport
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Personaliser
from pipeline.delivery.sends import (
    SendRow,
    all_sends,
    create_send,
    find_send,
    set_send_state,
)
from pipeline.delivery.transports import ConnectionFactory, open_transport
from pipeline.errors import SendError
from pipeline.settings.workspace import Workspace

DEFAULT_TRANSPORT = "maildir:outbox"
TEST_PREFIX = "[TEST] "


@dataclass
class Plan:
    """What `send` is about to do, for the confirmation prompt and --dry-run."""

    build: Build
    segment: Segment
    send: SendRow | None
    recipients: int  # deliveries still to go if the send has begun, else the segment's size


def plan(store: Store, workspace: Workspace, slug: str, segment: str | None = None,
         occurrence: str = "", now: datetime | None = None) -> Plan:
    build = build_campaign(workspace, slug).require_clean()
    chosen = segment or build.settings.segment
    with store.reading() as conn:
        target = segment_or_everyone(conn, chosen, workspace.segments, now=now)
        existing = find_send(conn, slug, occurrence)
        if existing is not None and existing.snapshot_at is not None:
            remaining, _ = pending(conn, existing.id)
            return Plan(build, target, existing, remaining)
        return Plan(build, target, existing, count(conn, target))


def begin_send(store: Store, plan_: Plan, slug: str, now: datetime, occurrence: str = "",
               due_at: datetime | None = None) -> SendRow:
    """Create the send (if new) and snapshot its recipients, in one transaction."""
    with store.transaction() as conn:
        send = create_send(conn, slug, segment=plan_.segment.expression, subject=plan_.build.rendered.newsletter.subject,
                           state="sending", now=now, occurrence=occurrence)
        if send.state == "paused":
            raise SendError(f"{slug} is paused; 'campaign resume {slug}' first")
        if send.state in ("draft", "scheduled"):
            set_send_state(conn, send.id, "sending", now)
        snapshot(conn, send, plan_.segment, now, due_at)
        return find_send(conn, slug, occurrence) or send


def pause(store: Store, slug: str, now: datetime) -> SendRow:
    """Stop a send or a schedule: running senders finish the message in flight and let go."""
    with store.transaction() as conn:
        send = find_send(conn, slug)
        if send is None or send.state not in ("sending", "scheduled"):
            state = send.state if send else "not sent or scheduled"
            raise SendError(f"{slug} cannot be paused: it is {state}")
        set_send_state(conn, send.id, "paused", now)
        return find_send(conn, slug) or send


def resume(store: Store, slug: str, now: datetime) -> SendRow:
    """Undo pause: back to its schedule if that is still ahead and nothing was sent, else sending."""
    with store.transaction() as conn:
        send = find_send(conn, slug)
        if send is None or send.state != "paused":
            state = send.state if send else "not sent or scheduled"
            raise SendError(f"{slug} is not paused: it is {state}")
        waiting = send.snapshot_at is None and send.scheduled_at is not None and send.scheduled_at > now
        set_send_state(conn, send.id, "scheduled" if waiting else "sending", now)
        return find_send(conn, slug) or send


def connection_factory(workspace: Workspace, transport: str | None) -> tuple[str, ConnectionFactory]:
    return open_transport(transport or DEFAULT_TRANSPORT, workspace.root)


@dataclass
class RunResult:
    report: SendReport
    recovered_unknown: int
    counts: dict[str, int]
    remaining: int
    next_due: datetime | None
    done: bool


def run(store: Store, workspace: Workspace, content: Content, send: SendRow, connect: ConnectionFactory,
        options: SendOptions, *, retry_unknown: bool = False, retry_failed: bool = False,
        stop: threading.Event | None = None, progress: Callable[[SendReport], None] | None = None,
        clock: Callable[[], datetime] = utcnow) -> RunResult:
    """Send what is due of one send now, then report where it stands."""
    now = clock()
    with store.transaction() as conn:
        recovered = recover(conn, send.id, now)
        if retry_unknown:
            requeue(conn, send.id, "unknown", now)
        if retry_failed:
            requeue(conn, send.id, "failed", now)
    tokens = Tokens.of_workspace(workspace.root)
    factory = MessageFactory(Personaliser(workspace, content, send.campaign, tokens), send.id)
    report = Sender(store, factory, connect, send.id, options, stop, progress, clock).run()
    with store.transaction() as conn:
        done = finish_if_done(conn, send.id, clock())
        remaining, next_due = pending(conn, send.id)
        totals = counts(conn, send.id)
    return RunResult(report, recovered, totals, remaining, next_due, done)


def test_send(store: Store, workspace: Workspace, slug: str, addresses: Sequence[str],
              connect: ConnectionFactory) -> list[tuple[str, str]]:
    """Send "[TEST]" copies to addresses, filled in with their subscriber data or sample data.

    Deliveries are not touched; each copy has a fresh Message-ID, so inboxes never fold a second
    test into the first.
    """
    content = build_campaign(workspace, slug).require_clean().content
    personaliser = Personaliser(workspace, content, slug, Tokens.of_workspace(workspace.root), TEST_PREFIX)
    factory = MessageFactory(personaliser, 0)
    results = []
    connection = connect()
    try:
        for address in addresses:
            with store.reading() as conn:
                recipient = lookup(conn, address) or sample_recipient(address)
            message_id = f"<test.{secrets.token_hex(8)}@{factory.domain}>"
            _, message = factory.build(recipient, message_id=message_id)
            reply = connection.send(factory.envelope_from, recipient.email, message)
            results.append((recipient.email, reply))
    finally:
        connection.close()
    return results


def status(store: Store, slug: str | None = None) -> list[dict[str, object]]:
    """Each send's state, counts per delivery state, bounces and complaints reported since, times,
    and failures with the server's replies."""
    out: list[dict[str, object]] = []
    with store.reading() as conn:
        reported = bounce_counts(conn)
        for send in all_sends(conn, slug):
            out.append({
                "campaign": send.campaign,
                "occurrence": send.occurrence or None,
                "state": send.state,
                "subject": send.subject,
                "scheduled_at": send.scheduled_at,
                "started_at": send.started_at,
                "finished_at": send.finished_at,
                "counts": counts(conn, send.id),
                "bounces": reported.get(send.id, {"hard": 0, "soft": 0, "complaint": 0}),
                "failures": [{"email": e, "state": s, "reply": r} for e, s, r in failures(conn, send.id)],
            })
    if slug is not None and not out:
        raise SendError(f"campaign {slug!r} has not been sent or scheduled yet")
    return out

