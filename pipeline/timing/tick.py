"""The tick: everything that is due now, done once, within a time budget. `campaign send-due`
(for cron) and `campaign scheduler` (APScheduler) both run exactly this.

It is safe to run several at once: occurrences and snapshots are made in transactions that
check whether another process already made them, and deliveries are leased atomically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.audience.segments import segment_or_everyone
from pipeline.clock import human
from pipeline.content.build import build_campaign
from pipeline.db.engine import Store
from pipeline.delivery.frozen import freeze
from pipeline.delivery.ledger import snapshot
from pipeline.delivery.runs import RateLimit, SendOptions
from pipeline.delivery.sending import run
from pipeline.delivery.sends import SendRow, all_sends, find_send, set_send_state
from pipeline.delivery.transports import ConnectionFactory
from pipeline.engagement.ab import start_due
from pipeline.errors import CampaignError, SeveralErrors
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import Workspace
from pipeline.timing import DEFAULT_BUDGET
from pipeline.timing.recurring import run_due
from pipeline.timing.schedule import default_zone, spread_local_time
from pipeline.workers import check_database, fans_out

_COUNTED = ("sent", "failed", "retrying", "skipped", "unknown")


@dataclass
class Outcome:
    campaign: str
    occurrence: str = ""
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    unknown: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.campaign} ({self.occurrence})" if self.occurrence else self.campaign

    def counts(self) -> list[str]:
        """The counts that are not zero, as "sent 40"."""
        return [f"{name} {getattr(self, name)}" for name in _COUNTED if getattr(self, name)]

    def summary(self) -> str:
        return ", ".join(self.counts() + self.notes)

    @property
    def busy(self) -> bool:
        return bool(self.counts() or self.notes or self.error)


@dataclass
class TickReport:
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)

    def of(self, campaign: str, occurrence: str = "") -> Outcome:
        return self.outcomes.setdefault((campaign, occurrence), Outcome(campaign, occurrence))

    @property
    def failed(self) -> bool:
        return any(o.error for o in self.outcomes.values())

    def busy(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.busy]

    def raise_failures(self) -> None:
        """SeveralErrors naming each campaign that failed, if any did."""
        problems = [f"{o.label}: {o.error}" for o in self.outcomes.values() if o.error]
        if problems:
            raise SeveralErrors(problems)


def _start_scheduled(store: Store, workspace: Workspace, send: SendRow, now: datetime) -> int:
    """A scheduled send whose time has come: fix its recipients (and their local times) and its
    content, in one transaction. Returns how many recipients."""
    tested = start_due(store, workspace, send, now)  # a subject test begins, or its winner goes (engagement.ab)
    if tested is not None:
        return tested
    content = build_campaign(workspace, send.campaign).require_clean().content
    with store.transaction() as conn:
        current = find_send(conn, send.campaign, send.occurrence)
        if current is None or current.state != "scheduled" or current.snapshot_at is not None:
            return 0  # another process started it, or it was paused meanwhile
        target = segment_or_everyone(conn, send.segment, workspace.segments, now=now)
        set_send_state(conn, current.id, "sending", now, subject=content.subject)
        count = snapshot(conn, current, target, current.scheduled_at or now)
        freeze(conn, current.id, content)
        if current.local_time:
            fallback = default_zone(workspace, current.timezone)
            spread_local_time(conn, current, fallback)
        return count


def _hand_out(store: Store, workspace: Workspace, send: SendRow, clock: Callable[[], datetime],
              outcome: Outcome) -> None:
    from pipeline.workers.fanout import hand_out

    handed = hand_out(store, workspace, [send], clock=clock)
    outcome.unknown = handed.recovered_unknown
    if handed.batches:
        outcome.notes.append(f"{handed.batches} batch(es) to the workers")
    if handed.done:
        outcome.notes.append("finished")


def tick(store: Store, workspace: Workspace, connect: ConnectionFactory, clock: Callable[[], datetime], *,
         max_seconds: float = DEFAULT_BUDGET, stop: threading.Event | None = None) -> TickReport:
    """Make due occurrences, start due schedules, send due deliveries; stop starting new
    messages when the budget is spent or `stop` is set. With [workers] broker, due deliveries
    are handed to the workers instead (which also sweeps up batches whose task was lost)."""
    fan_out = fans_out(workspace)
    if fan_out:
        check_database(store)
    deadline = time.monotonic() + max_seconds
    stop = stop or threading.Event()
    report = TickReport()
    now = clock()
    for slug in workspace.campaign_slugs():
        try:
            settings = load_campaign(workspace, slug)
            if not settings.recurrence:
                continue
            made = run_due(store, workspace, settings, now)
        except CampaignError as exc:
            report.of(slug).error = str(exc)
            continue
        if made is not None and made.send is None:
            report.of(slug).notes.append(f"occurrence of {human(made.moment)} skipped: nothing new")
        elif made is not None:
            report.of(slug, made.moment.isoformat()).notes.append(f"occurrence with {made.articles} article(s)")

    with store.reading() as conn:
        waiting = [s for s in all_sends(conn) if s.state == "scheduled" and s.scheduled_at and s.scheduled_at <= now]
    for send in waiting:
        try:
            started = _start_scheduled(store, workspace, send, now)
        except CampaignError as exc:
            report.of(send.campaign, send.occurrence).error = str(exc)
            continue
        if started:
            report.of(send.campaign, send.occurrence).notes.append(f"started for {started} recipient(s)")

    with store.reading() as conn:
        active = [s for s in all_sends(conn) if s.state == "sending"]
    # One pace for everything this tick sends, as campaign.toml's [sending] asks.
    options = SendOptions(concurrency=workspace.sending.concurrency, rate=RateLimit.parse(workspace.sending.rate),
                          deadline=deadline)
    for send in active:
        if stop.is_set() or time.monotonic() >= deadline:
            break
        outcome = report.of(send.campaign, send.occurrence)
        try:
            if fan_out:
                _hand_out(store, workspace, send, clock, outcome)
                continue
            result = run(store, workspace, send, connect, options, stop=stop, clock=clock)
        except CampaignError as exc:
            outcome.error = str(exc)
            continue
        r = result.report
        outcome.sent, outcome.failed, outcome.retrying = r.sent, r.failed, r.retrying
        outcome.skipped, outcome.unknown = r.skipped, r.unknown + result.recovered_unknown
        if r.error:
            outcome.error = r.error
        if result.done:
            outcome.notes.append("finished")
    return report
