"""The sending loop: slots claim deliveries, build each message, hand it to the transport and
record the outcome right after the server's answer.

Each slot owns one transport connection; one thread runs all of a run's slots (delivery.multiplex),
so no two wait on each other for the interpreter or the database. A stop request (Ctrl-C,
SIGTERM, pause) lets every slot finish the message in flight and give back the rows it leased,
so a clean stop leaves nothing `unknown`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from pipeline.audience.recipients import Recipient
from pipeline.clock import utcnow
from pipeline.db.engine import CACHE_PAGES, Store
from pipeline.db.raw import RawTransactions
from pipeline.delivery.bounces.intake import record_refusal
from pipeline.delivery.ledger import (
    Claimed,
    begin_statement,
    claim,
    mark_failed,
    mark_sent,
    mark_unknown,
    not_started,
    release,
    retry_later,
    sent_statement,
    worker_name,
)
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.multiplex import (
    WRITE_LOCK,
    Blocking,
    Commit,
    Multiplexer,
    Sleep,
    Task,
)
from pipeline.delivery.runs import SendOptions, SendReport
from pipeline.delivery.sends import state_of
from pipeline.delivery.transports import (
    Connection,
    ConnectionFactory,
    PermanentFailure,
    TemporaryFailure,
    UncertainDelivery,
)
from pipeline.errors import TransportError

CLAIM_BATCH = 50  # leased rows stay queued, so a crash never makes them unknown
CONNECT_ATTEMPTS = 3
SENDER_CACHE_KB = 2048  # SQLite page cache of each sending connection
# How often the caller hears how far the run is: a terminal's progress bar costs more to draw
# than a message costs to build, and nobody reads it faster than this.
PROGRESS_EVERY = 0.1


class Sender:
    def __init__(self, store: Store, factory: MessageFactory, connect: ConnectionFactory, send_id: int,
                 options: SendOptions, stop: threading.Event | None = None,
                 progress: Callable[[SendReport], None] | None = None,
                 clock: Callable[[], datetime] = utcnow, prefix: str | None = None) -> None:
        self.store = store
        self.factory = factory
        self.connect = connect
        self.send_id = send_id
        self.options = options
        self.stop = threading.Event()  # this run's own: --limit, the time budget, a pause, an error
        self.outside = stop or threading.Event()  # the caller's: Ctrl-C handlers, SIGTERM
        self.progress = progress or (lambda _report: None)
        self.clock = clock
        self.report = SendReport()
        self.shown = float("-inf")  # time.monotonic() the caller last heard of the report
        self.budget = options.limit
        self.prefix = prefix or worker_name(uuid.uuid4().hex[:8])  # its slots are prefix:0, prefix:1...
        # A batch is shared out among the slots in one claim each, so none idles at its end.
        share = -(-len(options.batch.ids) // max(1, options.concurrency)) if options.batch else CLAIM_BATCH
        self.claim_size = max(1, share)

    def run(self) -> SendReport:
        # The slots run in a thread of their own, so that Ctrl-C, which reaches only the main
        # thread, asks them to stop rather than breaking into a message. Its end is signalled by
        # an event rather than a join: on Python 3.11, a join interrupted by Ctrl-C marks a
        # still-running thread as finished.
        finished = threading.Event()
        threading.Thread(target=self._drive, args=(finished,), daemon=True).start()
        try:
            while not finished.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.report.stopped = True
            self.stop.set()
            finished.wait()
        self.progress(self.report)  # the last figures, whenever the run last told them
        return self.report

    def _drive(self, finished: threading.Event) -> None:
        try:
            with self.store.engine.connect() as db, small_cache(db):
                db.execution_options(writing=True)
                slots = max(1, self.options.concurrency)
                # Helpers open and close connections: twice the slots, so that opening a connection
                # never waits behind closing one that hangs.
                multiplexer = Multiplexer(RawTransactions(db), self._died, helpers=2 * slots)
                multiplexer.run([_Slot(self, f"{self.prefix}:{n}", db, multiplexer.in_background).run()
                                 for n in range(slots)])
        except Exception as exc:
            self._died(exc)
        finally:
            finished.set()

    def _died(self, exc: BaseException) -> None:
        """A slot that dies stops the others, and the run says why."""
        if not self.report.error:
            self.report.error = _reason(exc)
        self.stop.set()

    def told(self) -> None:
        """Tell the caller how far the run is, if it has not heard for a while."""
        now = time.monotonic()
        if now - self.shown >= PROGRESS_EVERY:
            self.shown = now
            self.progress(self.report)

    def wait_until(self, moment: float) -> Task:
        """Sleep until `moment` (time.monotonic()), or until this run should stop: a slow --rate
        must not hold a SIGTERM or the time budget back."""
        while not self.stopping():
            if moment <= time.monotonic():
                return
            yield Sleep(min(moment, time.monotonic() + 0.2))

    def stopping(self) -> bool:
        if self.outside.is_set():
            self.report.stopped = True
            self.stop.set()
        elif self.options.deadline is not None and time.monotonic() >= self.options.deadline:
            self.report.limited = True
            self.stop.set()
        return self.stop.is_set()

    def _take_budget(self) -> bool:
        if self.budget is None:
            return True
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True

    def _open(self) -> Connection:
        """A new connection; run in a helper thread (see multiplex.Blocking)."""
        delay = 1.0
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return self.connect()
            except TransportError:
                if attempt == CONNECT_ATTEMPTS - 1 or self.stop.wait(delay):
                    raise
                delay *= 2
        raise AssertionError("unreachable")


@contextmanager
def small_cache(db: sa.Connection) -> Iterator[sa.Connection]:
    """A SQLite connection with a small page cache while a sender uses it. A sender touches a few
    pages per message, and reads a send's rows once at its end: the large cache imports want would
    only grow with the list, per connection (memory flat at any size)."""
    sqlite = db.dialect.name == "sqlite"
    if sqlite:
        db.connection.driver_connection.execute(f"PRAGMA cache_size=-{SENDER_CACHE_KB}")
    try:
        yield db
    finally:
        if sqlite:  # the connection goes back to the pool for other work
            db.connection.driver_connection.execute(f"PRAGMA cache_size={CACHE_PAGES}")


def _reason(exc: Exception) -> str:
    """One line saying why a worker stopped; a database driver's own words rather than SQLAlchemy's
    wrapper (which adds a second line pointing at its website)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if isinstance(orig, Exception) else exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    return f"the database refused a change: {line}" if isinstance(orig, Exception) else line


class _Slot:
    """One connection's share of a run, as a task of the multiplexer: its own transport
    connection and its own name on the rows it leases, the run's database connection.

    A message's `sent` is written in the same transaction that marks the next message
    `sending` (or on its own before any pause); the slots' transactions are run together when
    they meet (delivery.multiplex), so a message costs a part of one.
    """

    def __init__(self, sender: Sender, name: str, db: sa.Connection,
                 background: Callable[[Callable[[], object]], None]) -> None:
        self.sender = sender
        self.name = name
        self.db = db
        self.background = background  # runs a call in a helper thread (multiplex.Multiplexer.in_background)
        self.connection: Connection | None = None
        self.sent: tuple[int, str] | None = None  # answered 250, not yet written down

    def advance(self, item: Claimed) -> Generator[Commit, list[int], str]:
        """Record the last message sent and mark this one `sending`, committed before it goes out."""
        now = self.sender.clock()
        statements = [begin_statement(item.delivery_id, self.name, now)]
        if self.sent is not None:
            statements.insert(0, sent_statement(self.sent[0], self.name, self.sent[1], now))
        started = (yield Commit(statements))[-1] == 1
        self.sent = None
        if started:
            return "started"
        with self.writing() as db:
            return not_started(db, item.delivery_id, self.name, now)

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A write transaction, one at a time in this process (see delivery.multiplex), that first
        records the last message sent."""
        with WRITE_LOCK, self.db.begin():
            if self.sent is not None:
                mark_sent(self.db, self.sent[0], self.name, self.sent[1], self.sender.clock())
                self.sent = None
            yield self.db

    def flush(self) -> None:
        if self.sent is not None:
            with self.writing():
                pass

    def run(self) -> Task:
        sender = self.sender
        try:
            while not sender.stopping():
                with self.writing() as db:  # the send's state and the claim in one transaction
                    if not self.active(db):
                        return
                    batch, skipped = claim(db, sender.send_id, self.name, sender.claim_size, sender.clock(),
                                           sender.options.batch)
                sender.report.add(skipped=skipped)
                if not batch and not skipped:
                    return  # nothing claimable is left: the send ends only then
                for index, item in enumerate(batch):
                    try:
                        if sender.options.rate.interval:
                            self.flush()  # the last message is written down now, not after the wait
                            yield from sender.wait_until(sender.options.rate.next_slot())
                        if not sender.stopping() and not sender._take_budget():
                            sender.report.limited = True
                            sender.stop.set()  # --limit reached: this run is done
                        if sender.stopping():
                            with self.writing() as db:
                                release(db, [c.delivery_id for c in batch[index:]], self.name, sender.clock())
                            return
                        yield from self.deliver(item)
                    except Exception:
                        # Leases of a living process are not taken back early, and this process may
                        # live on (the scheduler, a worker): give back what this slot will not send
                        # now. This row too: a failed group commit leaves it queued and leased to us
                        # (release touches only rows still queued, never one that went out).
                        with self.writing() as db:
                            release(db, [c.delivery_id for c in batch[index:]], self.name, sender.clock())
                        raise
        finally:
            try:
                self.flush()
            finally:
                self.drop_connection()

    def active(self, db: sa.Connection) -> bool:
        if state_of(db, self.sender.send_id) != "sending":
            self.sender.report.paused = True
            self.sender.stop.set()
            return False
        return True

    def deliver(self, item: Claimed) -> Task:
        sender, name = self.sender, self.name
        message_id, message = sender.factory.build(Recipient(item.subscriber_id, item.email, item.name, item.values()))
        if self.connection is None:
            # Opened before the row is marked `sending`: that must not last longer than the message
            # is on the wire. If it cannot be opened, run() gives the batch back and the run stops.
            self.connection = yield Blocking(sender._open)
        outcome = yield from self.advance(item)
        if outcome == "taken":
            return  # this claim's lease ran out and another sender has the row: it is theirs to send
        if outcome == "skipped":
            sender.report.add(skipped=1)
            return
        if outcome == "paused":
            sender.report.paused = True
            sender.stop.set()
            return
        try:
            yield from self.connection.steps(sender.factory.envelope_from, item.email, message)
        except TransportError as exc:
            # Nothing went out: the row goes back to the queue, and this run stops.
            with self.writing() as db:
                retry_later(db, item.delivery_id, name, str(exc), sender.clock(), sender.clock())
            raise
        except TemporaryFailure as exc:
            if exc.reconnect:
                self.drop_connection()
            self.temporary(item, exc.reply)
        except UncertainDelivery as exc:
            self.drop_connection()
            with self.writing() as db:
                mark_unknown(db, item.delivery_id, name, exc.reply, sender.clock())
            sender.report.add(unknown=1)
        except PermanentFailure as exc:
            with self.writing() as db:
                now = sender.clock()
                mark_failed(db, item.delivery_id, name, exc.reply, now)
                if exc.bounce and record_refusal(db, sender.send_id, item.subscriber_id, item.delivery_id,
                                                 exc.reply, now):
                    sender.report.add(bounced=1)
            sender.report.add(failed=1)
        else:
            self.sent = (item.delivery_id, message_id)
            sender.report.add(sent=1)
        sender.told()

    def drop_connection(self) -> None:
        # A server that stopped answering can hold a QUIT for a minute: that must not hold up
        # the other connections.
        if self.connection is not None:
            self.background(self.connection.close)
            self.connection = None

    def temporary(self, item: Claimed, reply: str) -> None:
        sender = self.sender
        now = sender.clock()
        attempts = item.attempts + 1
        with self.writing() as db:
            if attempts >= sender.options.retry.max_attempts:
                mark_failed(db, item.delivery_id, self.name, f"gave up after {attempts} attempts: {reply}", now)
                sender.report.add(failed=1)
            else:
                retry_later(db, item.delivery_id, self.name, reply, now + sender.options.retry.delay(attempts), now)
                sender.report.add(retrying=1)
