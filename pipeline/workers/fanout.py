"""Handing a send to the workers: its due deliveries, in batches of ids, through the broker.

    queued, due, unheld --feed--> queued, held by "broker:<token>" until now + visibility_timeout
        --a worker's task takes it--> held by that worker process (host:pid:run) --> claimed,
        sent, ... exactly as in a send run in its own process (delivery.loop)

The rows of a batch stay `queued` while the broker carries it; the batch's token is their holder
and its expiry the moment the batch counts as lost. `feed` is also the sweeper: a batch whose
task is gone (lost in a broker restart, or in a worker that died) leaves rows that are still
queued and whose hold has run out, and the next feed hands them out again under a new token.
A task that comes back late finds its token gone from the rows and takes only rows nobody
holds; the ledger's checks (a row is claimed by one worker only, begun only from `queued` by
its claimer) mean no message goes out twice either way.

At most `[workers] window` batches of a send are out at once: the backlog stays in the database,
a broker restart loses at most that much, and a batch never waits long in the queue. Workers
feed the send again when they finish a batch; the tick and `send --wait` do as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.tokens import Tokens
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.delivery.ledger import (
    counts,
    finish_if_done,
    held,
    pending,
    release,
    reserve,
)
from pipeline.delivery.runs import SendReport
from pipeline.delivery.sending import RunResult, content_of, prepare
from pipeline.delivery.sends import SendRow, state_of
from pipeline.errors import SendError
from pipeline.redact import redact_url
from pipeline.settings.workspace import Workspace
from pipeline.workers import TASK, check_database

HELD_BY_BROKER = "broker:"  # + the batch's token: the holder of rows a batch carries
_FEED_LOCK = 7243002  # with the send's id: one feeder of a send at a time (pg_try_advisory_xact_lock)
FEED_EVERY = 5.0  # seconds between feeds while `send --wait` watches


def fingerprint(tokens: Tokens) -> str:
    """Names the workspace secret without revealing it: a worker signing links and Message-IDs
    with another secret would give readers links that do not work and a second Message-ID."""
    return hmac.new(tokens.secret.encode("utf-8"), b"campaign worker", hashlib.sha256).hexdigest()[:16]


@dataclass
class Batch:
    token: str
    ids: list[int]


@dataclass
class Handed(RunResult):
    """A run's result when workers do the sending: where the send stands in the ledger."""

    batches: int = 0  # handed to the broker by this call
    held: int = 0  # deliveries out with the broker or workers now
    base: dict[str, int] = field(default_factory=dict)  # counts per state before this call handed anything out


def _lock(conn: Connection, send_id: int) -> bool:
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:kind, :send)"),
                             {"kind": _FEED_LOCK, "send": send_id}).scalar())


def feed(store: Store, workspace: Workspace, send_id: int, campaign: str, now: datetime) -> int:
    """Hand out due, queued rows that nobody holds, oldest due first, up to the window: rows never
    handed out, and rows whose batch's hold ran out (the sweep). Returns how many batches went
    to the broker."""
    settings = workspace.workers
    assert settings.broker is not None
    hold = now + timedelta(seconds=settings.visibility_timeout)
    batches: list[Batch] = []
    with store.transaction() as conn:
        if not _lock(conn, send_id) or state_of(conn, send_id) != "sending":
            return 0  # another process is feeding this send right now, or it is paused
        room = settings.window * settings.batch - held(conn, send_id, now)
        while room > 0:
            token = secrets.token_hex(6)
            ids = reserve(conn, send_id, HELD_BY_BROKER + token, min(settings.batch, room), now, hold)
            if not ids:
                break
            batches.append(Batch(token, ids))
            room -= len(ids)
    if batches:
        _publish(store, workspace, send_id, campaign, batches, now)
    return len(batches)


def _publish(store: Store, workspace: Workspace, send_id: int, campaign: str, batches: list[Batch],
             now: datetime) -> None:
    from kombu.exceptions import OperationalError

    from pipeline.workers.app import make_app

    broker = workspace.workers.broker
    assert broker is not None
    app = make_app(broker, workspace.workers.visibility_timeout)
    secret = fingerprint(Tokens.of_workspace(workspace.root))
    done = 0
    try:
        with app.producer_or_acquire() as producer:
            for batch in batches:
                app.send_task(TASK, kwargs={"send_id": send_id, "campaign": campaign, "token": batch.token,
                                            "ids": batch.ids, "secret": secret}, producer=producer)
                done += 1
    except (OperationalError, OSError) as exc:
        # Rows of batches that did not go out are free again at once, for the next feed.
        with store.transaction() as conn:
            for batch in batches[done:]:
                release(conn, batch.ids, HELD_BY_BROKER + batch.token, now)
        raise SendError(f"cannot reach the broker {redact_url(broker)}: {exc}") from None


def together(store: Store, send: SendRow) -> list[SendRow]:
    """A send and, for a subject test, the sends of its other subjects (engagement.ab): `campaign
    send` hands them out and follows them as one, as it sends them one after the other itself."""
    from pipeline.engagement import ab

    with store.reading() as conn:
        return [send, *ab.siblings(conn, send)]


def hand_out(store: Store, workspace: Workspace, sends: list[SendRow], *, retry_unknown: bool = False,
             retry_failed: bool = False, clock: Callable[[], datetime] = utcnow) -> Handed:
    """What `campaign send` and the tick do with a broker: recover what dead senders left, queue
    again what was asked for, feed the workers, and say where the sends stand (together)."""
    check_database(store)
    recovered = requeued = batches = 0
    for send in sends:
        dead, again = prepare(store, send, clock(), retry_unknown=retry_unknown, retry_failed=retry_failed)
        recovered, requeued = recovered + dead, requeued + again
        content_of(store, workspace, send)  # a send begun before content was frozen is frozen now, once
    base = _counts(store, sends)
    for send in sends:
        batches += feed(store, workspace, send.id, send.campaign, clock())
    result = standing(store, sends, clock(), base)
    result.recovered_unknown, result.requeued, result.batches, result.base = recovered, requeued, batches, base
    return result


def _counts(store: Store, sends: list[SendRow]) -> dict[str, int]:
    total: dict[str, int] = {}
    with store.reading() as conn:
        for send in sends:
            for state, n in counts(conn, send.id).items():
                total[state] = total.get(state, 0) + n
    return total


def standing(store: Store, sends: list[SendRow], now: datetime, since: dict[str, int] | None = None) -> Handed:
    """Where sends handed to workers stand, together, from the ledger; the report counts the
    outcomes recorded after `since` (counts per state taken earlier)."""
    totals: dict[str, int] = {}
    remaining = holding = 0
    dues: list[datetime] = []
    done, paused = True, False
    with store.transaction() as conn:
        for send in sends:
            done = finish_if_done(conn, send.id, now) and done
            for state, n in counts(conn, send.id).items():
                totals[state] = totals.get(state, 0) + n
            left, next_due = pending(conn, send.id)
            remaining += left
            dues += [next_due] if next_due is not None else []
            paused = paused or state_of(conn, send.id) == "paused"
            holding += held(conn, send.id, now)
    base = since or dict.fromkeys(totals, 0)
    report = SendReport(**{name: totals[name] - base.get(name, 0) for name in ("sent", "failed", "skipped", "unknown")})
    report.paused = paused
    return Handed(report, 0, totals, remaining, min(dues, default=None), done, held=holding)


def wait(store: Store, workspace: Workspace, sends: list[SendRow], progress: Callable[[SendReport], None],
         since: dict[str, int], *, poll: float = 0.5, clock: Callable[[], datetime] = utcnow) -> Handed:
    """`send --wait`: follow the ledger until the sends are done or paused, or only retries due
    later are left; feed the workers meanwhile (which also sweeps up lost batches)."""
    fed = time.monotonic()
    while True:
        result = standing(store, sends, clock(), since)
        progress(result.report)
        due_now = result.next_due is not None and result.next_due <= clock()
        if result.done or result.report.paused or not (due_now or result.held):
            return result
        if time.monotonic() - fed >= FEED_EVERY:
            for send in sends:
                feed(store, workspace, send.id, send.campaign, clock())
            fed = time.monotonic()
        time.sleep(poll)
