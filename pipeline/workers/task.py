"""A worker's task: send one batch with the loop a send in its own process runs (delivery.loop).

The task first takes its batch's rows in the name of this run (host:pid:run): only rows that
are still queued, due, and held by its token or by nobody. A batch redelivered late, or twice,
finds nothing of that kind and ends at once. Then the loop claims from those rows, in steps,
and records every outcome in the ledger as usual; what is left when the run stops (a pause, a
SIGTERM, half the visibility timeout spent) is given back for the next feed.

Everything a process needs (database, workspace, SMTP pool, the shared rate, one MessageFactory
per send's frozen content) is made once per worker process, after Celery forks it.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType

from pipeline.audience.tokens import Tokens
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.delivery.frozen import frozen
from pipeline.delivery.ledger import (
    TASK_MARK,
    Batch,
    finish_if_done,
    recover,
    release,
    reserve,
    worker_name,
)
from pipeline.delivery.loop import Sender
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.runs import RateLimit, SendOptions, SendReport
from pipeline.delivery.sending import connection_factory
from pipeline.delivery.sends import state_of
from pipeline.delivery.tracking import send_factory
from pipeline.errors import CampaignError, SendError
from pipeline.settings.workspace import Workspace, load_workspace
from pipeline.workers.fanout import HELD_BY_BROKER, feed, fingerprint
from pipeline.workers.pool import Pool
from pipeline.workers.rate import SharedRate

log = logging.getLogger("campaign.worker")
FRESH = 60.0  # seconds a process keeps a send's MessageFactory


@dataclass(frozen=True)
class WorkerSettings:
    """What `campaign worker` was started with; every process it forks works from these."""

    workspace_dir: Path
    db_url: str
    transport_url: str | None
    concurrency: int  # SMTP connections per process


class Context:
    """One worker process's database, settings, connections and message factories."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.pid = os.getpid()
        self.settings = settings
        self.workspace: Workspace = load_workspace(settings.workspace_dir)
        self.store = Store(settings.db_url)
        _, connect = connection_factory(self.workspace, settings.transport_url)
        self.pool = Pool(connect)
        self.tokens = Tokens.of_workspace(self.workspace.root)
        self.secret = fingerprint(self.tokens)
        broker = self.workspace.workers.broker or ""
        self.rate: RateLimit = SharedRate.shared(self.workspace.sending.rate, broker)
        self.factories: dict[tuple[int, str], tuple[float, MessageFactory]] = {}

    def factory(self, send_id: int, campaign: str) -> MessageFactory:
        """The send's MessageFactory, made by this process from the send's frozen content and kept
        for its next batches; made again after FRESH seconds, as a tick would, so a reader who
        opted out of tracking meanwhile is not tracked for long."""
        with self.store.reading() as conn:
            content = frozen(conn, send_id)
        if content is None:
            raise SendError(f"send {send_id} of {campaign} has no frozen content; 'campaign send {campaign}' "
                            "freezes it")
        key = (send_id, content.digest)
        made = self.factories.get(key)
        if made is None or time.monotonic() - made[0] > FRESH:
            made = self.factories[key] = (time.monotonic(), send_factory(self.store, self.workspace, content,
                                                                         campaign, send_id, self.tokens))
        return made[1]

    def close(self) -> None:
        self.pool.close()
        self.store.close()


_settings: WorkerSettings | None = None
_context: Context | None = None
_stop = threading.Event()  # SIGTERM or Ctrl-C: the batch in hand stops after the messages in flight
_idle = threading.Event()
_idle.set()


def configure(settings: WorkerSettings) -> None:
    """Set before Celery forks its processes; each makes its Context from these on first use."""
    global _settings
    _settings = settings


def context() -> Context:
    global _context
    if _context is None or _context.pid != os.getpid():
        assert _settings is not None, "configure() the worker before it takes tasks"
        _context = Context(_settings)
    return _context


def on_process_end() -> None:
    if _context is not None and _context.pid == os.getpid():
        _context.close()


def _catch_signals() -> None:
    """SIGTERM (systemd stops the whole control group) or Ctrl-C stops the batch in hand after the
    messages in flight; the process ends as its pool would have it once the batch is reported
    done. Set at each task: the pool installs its own handlers after the process starts."""
    if _stop.is_set():
        return
    for signum in _STOPPING:
        current = signal.getsignal(signum)
        if current is not _on_signal:
            _previous[signum] = current
            signal.signal(signum, _on_signal)


_STOPPING = (signal.SIGTERM, signal.SIGINT)
_previous: dict[int, object] = {}


def _on_signal(_signum: int, _frame: FrameType | None) -> None:
    for signum, handler in _previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]  # a second signal acts at once
    _stop.set()
    threading.Thread(target=_end_when_idle, daemon=True).start()


def _end_when_idle() -> None:
    _idle.wait()
    time.sleep(0.5)  # the batch's end reaches the main process first, which then acknowledges it
    os.kill(os.getpid(), signal.SIGTERM)


def send_batch(send_id: int, campaign: str, token: str, ids: list[int], secret: str) -> dict[str, object]:
    """Send what is still to send of one batch; returns counts for the worker's log."""
    _idle.clear()
    try:
        _catch_signals()
        return _send_batch(context(), send_id, campaign, token, ids, secret)
    finally:
        _idle.set()


def _send_batch(ctx: Context, send_id: int, campaign: str, token: str, ids: list[int],
                secret: str) -> dict[str, object]:
    now = utcnow()
    handed = HELD_BY_BROKER + token
    if secret != ctx.secret:
        with ctx.store.transaction() as conn:
            release(conn, ids, handed, now)
        log.error("%s: batch refused: this worker's workspace secret differs from the one that queued it "
                  "(links and Message-IDs would differ); give every host the same CAMPAIGN_SECRET", campaign)
        return {"refused": len(ids)}
    run = worker_name(TASK_MARK + secrets.token_hex(4)[1:])
    visibility = ctx.workspace.workers.visibility_timeout
    with ctx.store.transaction() as conn:
        if state_of(conn, send_id) != "sending":
            release(conn, ids, handed, now)  # paused meanwhile: free for the feed after `resume`
            return {"taken": 0}
        recover(conn, send_id, now)  # a dead worker's rows on this host are free (or unknown) at once
        mine = reserve(conn, send_id, run, len(ids), now, now + timedelta(seconds=visibility),
                       Batch(tuple(ids), handed))
    if not mine:
        return {"taken": 0}  # delivered late or twice: the rows are sent, or in other hands
    report = SendReport()
    try:
        factory = ctx.factory(send_id, campaign)
        options = SendOptions(concurrency=ctx.settings.concurrency, rate=ctx.rate,
                              deadline=time.monotonic() + visibility / 2, batch=Batch(tuple(mine), run))
        report = Sender(ctx.store, factory, ctx.pool, send_id, options, _stop, prefix=run).run()
    finally:
        with ctx.store.transaction() as conn:
            release(conn, mine, run, utcnow())  # what this run did not get to
            done = finish_if_done(conn, send_id, utcnow())
    if report.error:
        log.warning("%s: batch stopped: %s", campaign, report.error)  # the tick hands its rest out again
    elif not (done or report.stopped or report.paused):
        try:
            feed(ctx.store, ctx.workspace, send_id, campaign, utcnow())
        except CampaignError as exc:  # this batch is done; the tick feeds the send once the broker is back
            log.warning("%s: %s", campaign, exc)
    return {"taken": len(mine), "sent": report.sent, "failed": report.failed, "retrying": report.retrying,
            "skipped": report.skipped, "unknown": report.unknown}
