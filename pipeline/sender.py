"""The sending loop: workers claim deliveries, build each message, hand it to the transport and
record the outcome right after the server's answer.

Each worker owns one transport connection. A stop request (Ctrl-C, SIGTERM, pause) lets every
worker finish the message in flight and give back the rows it leased, so a clean stop leaves
nothing `unknown`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from pipeline.deliveries import (
    Claimed,
    begin,
    claim,
    mark_failed,
    mark_sent,
    mark_unknown,
    release,
    retry_later,
    worker_name,
)
from pipeline.messages import MessageFactory, Recipient
from pipeline.settings import RATE
from pipeline.store import Store, sends, utcnow
from pipeline.subscribers import get_by_id, set_status
from pipeline.transports import (
    Connection,
    ConnectionFactory,
    PermanentFailure,
    TemporaryFailure,
    TransportError,
    UncertainDelivery,
)

CLAIM_BATCH = 20
CONNECT_ATTEMPTS = 3


class RateLimit:
    """A shared pace for all workers: at most `per_second` messages a second, evenly spread."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1 / per_second if per_second else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    @classmethod
    def parse(cls, text: str | None) -> RateLimit:
        if not text:
            return cls(None)
        match = RATE.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a rate like '50/s' or '1000/h'")
        count, unit = float(match.group(1)), match.group(2)[0]
        seconds = {"s": 1, "m": 60, "h": 3600}[unit]
        return cls(count / seconds if count else None)

    def wait(self, stop: threading.Event) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(self.next, now)
            self.next = slot + self.interval
        if slot > now:
            stop.wait(slot - now)


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a 4xx or a dropped connection again, and when to give up."""

    first_delay: float = 60.0
    factor: float = 4.0
    max_delay: float = 4 * 3600.0
    max_attempts: int = 6

    def delay(self, attempts: int) -> timedelta:
        seconds = min(self.first_delay * self.factor ** max(attempts - 1, 0), self.max_delay)
        return timedelta(seconds=seconds)


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    bounced: int = 0
    unknown: int = 0
    stopped: bool = False
    paused: bool = False
    limited: bool = False
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass
class SendOptions:
    concurrency: int = 4
    rate: RateLimit = field(default_factory=lambda: RateLimit(None))
    limit: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class Sender:
    def __init__(self, store: Store, factory: MessageFactory, connect: ConnectionFactory, send_id: int,
                 options: SendOptions, stop: threading.Event | None = None,
                 progress: Callable[[SendReport], None] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.factory = factory
        self.connect = connect
        self.send_id = send_id
        self.options = options
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda _report: None)
        self.clock = clock
        self.report = SendReport()
        self.budget = options.limit
        self.budget_lock = threading.Lock()
        self.prefix = worker_name(uuid.uuid4().hex[:8])

    def run(self) -> SendReport:
        # Workers signal their end with events rather than being joined: on Python 3.11, a join
        # interrupted by Ctrl-C marks a still-running thread as finished.
        finished = [threading.Event() for _ in range(max(1, self.options.concurrency))]
        for n, done in enumerate(finished):
            threading.Thread(target=self._worker, args=(f"{self.prefix}:{n}", done), daemon=True).start()
        try:
            for done in finished:
                while not done.wait(0.2):
                    pass
        except KeyboardInterrupt:
            self.report.stopped = True
            self.stop.set()
            for done in finished:
                done.wait()
        return self.report

    def _take_budget(self) -> bool:
        if self.budget is None:
            return True
        with self.budget_lock:
            if self.budget <= 0:
                return False
            self.budget -= 1
            return True

    def _active(self) -> bool:
        with self.store.reading() as db:
            state = db.execute(sa.select(sends.c.state).where(sends.c.id == self.send_id)).scalar()
        if state != "sending":
            self.report.paused = True
            self.stop.set()
            return False
        return True

    def _worker(self, name: str, done: threading.Event) -> None:
        connection: Connection | None = None
        try:
            while not self.stop.is_set() and self._active():
                with self.store.transaction() as db:
                    batch = claim(db, self.send_id, name, CLAIM_BATCH, self.clock())
                if not batch:
                    return
                for index, item in enumerate(batch):
                    if not self.stop.is_set() and not self._take_budget():
                        self.report.limited = True
                        self.stop.set()  # --limit reached: this run is done
                    if self.stop.is_set():
                        with self.store.transaction() as db:
                            release(db, [c.delivery_id for c in batch[index:]], name, self.clock())
                        return
                    connection = self._deliver(name, item, connection)
        except Exception as exc:  # a worker that dies must stop the others and say why
            if not self.report.error:
                self.report.error = str(exc) or type(exc).__name__
            self.stop.set()
        finally:
            if connection is not None:
                connection.close()
            done.set()

    def _deliver(self, name: str, item: Claimed, connection: Connection | None) -> Connection | None:
        message_id, message = self.factory.build(Recipient(item.subscriber_id, item.email, item.name, item.values()))
        with self.store.transaction() as db:
            outcome = begin(db, item.delivery_id, name, self.clock())
        if outcome == "skipped":
            self.report.add(skipped=1)
            return connection
        if outcome == "paused":
            self.report.paused = True
            self.stop.set()
            return connection
        self.options.rate.wait(self.stop)
        try:
            if connection is None:
                connection = self._open()
            connection.send(self.factory.envelope_from, item.email, message)
        except TransportError as exc:
            # Nothing went out: the row goes back to the queue, and this run stops.
            with self.store.transaction() as db:
                retry_later(db, item.delivery_id, name, str(exc), self.clock(), self.clock())
            raise
        except TemporaryFailure as exc:
            if exc.reconnect and connection is not None:
                connection.close()
                connection = None
            self._temporary(name, item, exc.reply)
        except UncertainDelivery as exc:
            if connection is not None:
                connection.close()
                connection = None
            with self.store.transaction() as db:
                mark_unknown(db, item.delivery_id, name, exc.reply, self.clock())
            self.report.add(unknown=1)
        except PermanentFailure as exc:
            now = self.clock()
            with self.store.transaction() as db:
                mark_failed(db, item.delivery_id, name, exc.reply, now)
                if exc.bounce:
                    subscriber = get_by_id(db, item.subscriber_id)
                    if subscriber is not None and set_status(db, subscriber, "bounced", "smtp", exc.reply):
                        self.report.add(bounced=1)
            self.report.add(failed=1)
        else:
            with self.store.transaction() as db:
                mark_sent(db, item.delivery_id, name, message_id, self.clock())
            self.report.add(sent=1)
        self.progress(self.report)
        return connection

    def _temporary(self, name: str, item: Claimed, reply: str) -> None:
        now = self.clock()
        attempts = item.attempts + 1
        with self.store.transaction() as db:
            if attempts >= self.options.retry.max_attempts:
                mark_failed(db, item.delivery_id, name, f"gave up after {attempts} attempts: {reply}", now)
                self.report.add(failed=1)
            else:
                retry_later(db, item.delivery_id, name, reply, now + self.options.retry.delay(attempts), now)
                self.report.add(retrying=1)

    def _open(self) -> Connection:
        delay = 1.0
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return self.connect()
            except TransportError:
                if attempt == CONNECT_ATTEMPTS - 1 or self.stop.wait(delay):
                    raise
                delay *= 2
        raise AssertionError("unreachable")
