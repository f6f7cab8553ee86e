"""Sending a campaign: check it, fix its recipients and its content once, run the workers, report.

`campaign send`, `send-due` and the scheduler all come through here, so a campaign is sent the
same way whoever starts it. A send says what it said when it began: its content is frozen in
the transaction that fixes its recipients, and every later run sends that (see delivery.frozen).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pipeline.audience.segments import Segment, count, segment_or_everyone
from pipeline.audience.tokens import Tokens
from pipeline.clock import utcnow
from pipeline.content.build import Build, Content, build_campaign
from pipeline.db.engine import Store
from pipeline.delivery.frozen import freeze, frozen, replace
from pipeline.delivery.ledger import (
    counts,
    finish_if_done,
    pending,
    recover,
    requeue,
    snapshot,
)
from pipeline.delivery.loop import Sender, small_cache
from pipeline.delivery.runs import SendOptions, SendReport
from pipeline.delivery.sends import (
    SendRow,
    create_send,
    find_send,
    record,
    reopen,
    set_send_state,
)
from pipeline.delivery.tracking import send_factory
from pipeline.delivery.transports import ConnectionFactory, open_transport
from pipeline.engagement import ab
from pipeline.errors import CampaignError, SendError
from pipeline.settings.workspace import Workspace

DEFAULT_TRANSPORT = "maildir:outbox"
RETRY_WINDOW = 600.0  # seconds a foreground send stays to retry temporary failures itself


@dataclass
class Plan:
    """What `send` is about to do, for the confirmation prompt and --dry-run."""

    segment: Segment
    send: SendRow | None
    recipients: int  # deliveries still to go if the send has begun, else the segment's size
    content: Content  # what the send says: its frozen content once begun, else the campaign as built now
    build: Build | None  # the campaign as its folder builds now; None if it no longer builds
    changed: bool = False  # the folder no longer builds what the started send says

    @property
    def started(self) -> bool:
        return self.send is not None and self.send.snapshot_at is not None


def plan(store: Store, workspace: Workspace, slug: str, segment: str | None = None,
         occurrence: str = "", now: datetime | None = None) -> Plan:
    """A send not yet begun needs a clean build; one under way goes on with what it froze."""
    with store.reading() as conn:
        existing = find_send(conn, slug, occurrence)
        stored = frozen(conn, existing.id) if existing is not None and existing.snapshot_at else None
    try:
        build: Build | None = build_campaign(workspace, slug).require_clean()
    except CampaignError:
        if stored is None:
            raise
        build = None  # the folder broke after the send began: the send does not need it
    with store.reading() as conn:
        if existing is not None and existing.snapshot_at is not None:
            if segment and segment_or_everyone(conn, segment, workspace.segments, now=now).expression != \
                    workspace.segments.get(existing.segment or "", existing.segment):
                raise SendError(f"{slug} already has its recipients ({existing.segment}); --segment cannot change them")
            target = segment_or_everyone(conn, existing.segment, workspace.segments, now=now)
            remaining, _ = pending(conn, existing.id)
            assert build is not None or stored is not None
            content = stored or build.content  # type: ignore[union-attr]
            changed = build is None or (stored is not None and stored.digest != build.content.digest)
            return Plan(target, existing, remaining, content, build, changed)
        assert build is not None
        target = segment_or_everyone(conn, segment or build.settings.segment, workspace.segments, now=now)
        test = build.settings.ab if not occurrence else None
        if test is not None:  # a subject test: only its test group goes now (engagement.ab)
            return Plan(target, existing, ab.test_size(conn, slug, test, target), ab.plan_content(build.content, test),
                        build)
        return Plan(target, existing, count(conn, target), build.content, build)


def begin_send(store: Store, plan_: Plan, slug: str, now: datetime, occurrence: str = "",
               due_at: datetime | None = None) -> SendRow:
    """Create the send (if new), snapshot its recipients and freeze its content, in one transaction.
    A subject test makes a send per subject instead, and returns the first (see engagement.ab)."""
    with store.transaction() as conn:
        if not occurrence:
            built = plan_.build
            first = ab.begin(conn, slug, built.settings.ab if built else None, built.content if built else plan_.content,
                             plan_.segment, now)
            if first is not None:
                return first
        send = create_send(conn, slug, segment=plan_.segment.expression, subject=plan_.content.subject,
                           state="sending", now=now, occurrence=occurrence)
        if send.state == "paused":
            raise SendError(f"{slug} is paused; 'campaign resume {slug}' first")
        if send.state in ("draft", "scheduled"):
            set_send_state(conn, send.id, "sending", now, subject=plan_.content.subject)
        snapshot(conn, send, plan_.segment, now, due_at)
        freeze(conn, send.id, plan_.content)
        return find_send(conn, slug, occurrence) or send


def restart_content(store: Store, plan_: Plan, now: datetime) -> Plan:
    """Replace a started send's frozen content with the campaign as it builds now. Refused once any
    message of it went out (or may have): readers of one send all get the same email."""
    if plan_.send is None or not plan_.started:
        return plan_  # nothing frozen yet: the send will begin with the current build anyway
    if plan_.build is None:
        raise SendError(f"{plan_.send.campaign} does not build now; fix it before --restart-content")
    with store.transaction() as conn:
        tally = counts(conn, plan_.send.id)
        gone = tally["sent"] + tally["sending"] + tally["unknown"] + tally["failed"]
        if gone:
            raise SendError(f"{plan_.send.campaign} has {gone} message(s) out already; --restart-content is refused "
                            "once anything was sent (make a new campaign for the new content)")
        replace(conn, plan_.send.id, plan_.build.content)
        set_send_state(conn, plan_.send.id, plan_.send.state, now, subject=plan_.build.content.subject)
        record(conn, plan_.send.id, "content-replaced", now, plan_.build.content.digest[:12])
    return Plan(plan_.segment, plan_.send, plan_.recipients, plan_.build.content, plan_.build, False)


def pause(store: Store, slug: str, now: datetime) -> SendRow:
    """Stop a send or a schedule: running senders finish the message in flight and let go."""
    with store.transaction() as conn:
        send = find_send(conn, slug)
        if send is None or send.state not in ("sending", "scheduled"):
            state = send.state if send else "not sent or scheduled"
            raise SendError(f"{slug} cannot be paused: it is {state}")
        set_send_state(conn, send.id, "paused", now)
        record(conn, send.id, "paused", now)
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
        record(conn, send.id, "resumed", now)
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
    requeued: int = 0  # unknown or failed rows deliberately queued again by this run


def content_of(store: Store, workspace: Workspace, send: SendRow) -> Content:
    """The send's frozen content. A send begun before content was frozen freezes the campaign as
    it builds now, once: from then on it is fixed like any other."""
    with store.reading() as conn:
        stored = frozen(conn, send.id)
    if stored is not None:
        return stored
    content = build_campaign(workspace, send.campaign).require_clean().content
    with store.transaction() as conn:
        return freeze(conn, send.id, content)


def prepare(store: Store, send: SendRow, now: datetime, *, retry_unknown: bool = False,
            retry_failed: bool = False) -> tuple[int, int]:
    """Before a run (here or on workers): rows of senders that died become unknown, and the
    unknown or failed rows asked for are queued again, reopening a finished send for exactly
    them. Returns how many became unknown and how many were queued again."""
    with store.transaction() as conn:
        recovered = recover(conn, send.id, now)
        again = {state: requeue(conn, send.id, state, now) if wanted else 0
                 for state, wanted in (("unknown", retry_unknown), ("failed", retry_failed))}
        requeued = sum(again.values())
        if requeued:
            detail = ", ".join(f"{n} {state}" for state, n in again.items() if n) + " queued again"
            if not reopen(conn, send.id, now, detail):
                record(conn, send.id, "retried", now, detail)
    return recovered, requeued


def run(store: Store, workspace: Workspace, send: SendRow, connect: ConnectionFactory,
        options: SendOptions, *, retry_unknown: bool = False, retry_failed: bool = False,
        stop: threading.Event | None = None, progress: Callable[[SendReport], None] | None = None,
        clock: Callable[[], datetime] = utcnow) -> RunResult:
    """Send what is due of one send now, then report where it stands.

    --retry-unknown and --retry-failed queue those rows again; a send that had finished is
    reopened for exactly them, and finishes again when they are done.
    """
    recovered, requeued = prepare(store, send, clock(), retry_unknown=retry_unknown, retry_failed=retry_failed)
    content = content_of(store, workspace, send)
    factory = send_factory(store, workspace, content, send.campaign, send.id, Tokens.of_workspace(workspace.root))
    report = Sender(store, factory, connect, send.id, options, stop, progress, clock).run()
    with store.transaction() as conn, small_cache(conn):  # the counts read every row of the send
        done = finish_if_done(conn, send.id, clock())
        remaining, next_due = pending(conn, send.id)
        totals = counts(conn, send.id)
    return RunResult(report, recovered, totals, remaining, next_due, done, requeued)


def run_with_retries(store: Store, workspace: Workspace, send: SendRow, connect: ConnectionFactory,
                     options: SendOptions, *, window: float = RETRY_WINDOW, retry_unknown: bool = False,
                     retry_failed: bool = False, progress: Callable[[SendReport], None] | None = None,
                     waiting: Callable[[datetime], None] | None = None,
                     clock: Callable[[], datetime] = utcnow) -> RunResult:
    """`campaign send` in the foreground: run, and while temporary failures (4xx, dropped
    connections) fall due again within `window` seconds, wait for them and run again. What is
    still waiting after that is left to `send-due` or the scheduler. The sends of a subject
    test's subjects are run one after the other, as one."""
    with store.reading() as conn:
        others = ab.siblings(conn, send)
    result = _run_with_retries(store, workspace, send, connect, options, window=window, retry_unknown=retry_unknown,
                               retry_failed=retry_failed, progress=progress, waiting=waiting, clock=clock)
    for other in others:
        if result.report.stopped or result.report.paused or result.report.limited or result.report.error:
            break
        before = result.report
        more = _run_with_retries(store, workspace, other, connect, options, window=window, retry_unknown=retry_unknown,
                                 retry_failed=retry_failed, waiting=waiting, clock=clock,
                                 progress=(lambda r, b=before: progress(b.merged(r))) if progress else None)
        dues = [d for d in (result.next_due, more.next_due) if d is not None]
        result = RunResult(before.merged(more.report), result.recovered_unknown + more.recovered_unknown,
                           {k: n + more.counts.get(k, 0) for k, n in result.counts.items()},
                           result.remaining + more.remaining, min(dues, default=None), result.done and more.done,
                           result.requeued + more.requeued)
    return result


def _run_with_retries(store: Store, workspace: Workspace, send: SendRow, connect: ConnectionFactory,
                      options: SendOptions, *, window: float, retry_unknown: bool, retry_failed: bool,
                      progress: Callable[[SendReport], None] | None, waiting: Callable[[datetime], None] | None,
                      clock: Callable[[], datetime]) -> RunResult:
    until = time.monotonic() + window
    total = SendReport()

    def each(report: SendReport) -> None:  # the bar counts every run of this command
        if progress is not None:
            progress(total.merged(report))

    result = run(store, workspace, send, connect, options, retry_unknown=retry_unknown, retry_failed=retry_failed,
                 progress=each, clock=clock)
    total = result.report
    while not (result.done or total.stopped or total.paused or total.limited or total.error):
        if result.next_due is None:
            break
        wait = (result.next_due - clock()).total_seconds()
        if time.monotonic() + max(wait, 0) > until:
            break
        if wait > 0:
            if waiting is not None:
                waiting(result.next_due)
            time.sleep(wait)  # nothing is in flight: Ctrl-C here stops cleanly
        result = run(store, workspace, send, connect, options, progress=each, clock=clock)
        total = total.merged(result.report)
        result.report = total
    return result
