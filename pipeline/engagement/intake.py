"""Hits recorded without making anyone wait: kept in memory a moment, written in batches.

A click must redirect at once and a pixel must load at once, and a campaign sent to many readers
draws many hits together (security scanners, Apple's proxies, the morning's opens). So a hit is
only noted here; one writer thread puts what came in, every INTERVAL, in batches of up to BATCH, into the
database in one transaction. On SQLite that is one writer instead of hundreds queueing for its
lock (no "database is locked"), and one commit instead of one per hit.

While the database cannot be written (an import holding SQLite's lock, a PostgreSQL restart),
hits wait in memory and are written once it can, up to MAX_WAITING; beyond that the oldest are
dropped and counted. A server that stops cleanly writes what it holds first; one that is killed
loses at most the last INTERVAL of hits. A batch written twice (a commit whose answer was lost)
changes nothing: events are idempotent (see events).

Before writing, each hit's reader is looked up: an erased subscriber (or one who asked not to be
tracked since the message went out) gets nothing recorded.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError, IntegrityError

from pipeline.db.engine import Store
from pipeline.engagement.events import Event, record
from pipeline.engagement.policy import declined

INTERVAL = 0.1  # seconds between writes while hits come in
BATCH = 2000  # hits written in one transaction at most
LOCK_WAIT = 1.0  # seconds a write waits for SQLite's lock before leaving the hits for the next try
MAX_WAITING = 1_000_000  # hits kept while the database cannot be written
log = logging.getLogger("campaign.web")


class Intake:
    """Hits waiting to be written, and the one writer that writes them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.waiting: deque[Event] = deque()
        self.lock = threading.Lock()  # one write at a time: the writer task and a final flush
        self.recorded = 0
        self.refused = 0  # hits of erased or untracked readers, and of sends that are gone
        self.dropped = 0  # hits lost because too many waited

    def add(self, event: Event) -> None:
        self.waiting.append(event)  # deque.append is atomic: the event loop never waits here
        if len(self.waiting) > MAX_WAITING:
            self.waiting.popleft()
            self.dropped += 1

    def flush(self) -> int:
        """Write what is waiting, in batches; returns how many were recorded. Hits that cannot be
        written now (the database is locked or gone) go back to wait for the next flush."""
        written = 0
        with self.lock:
            while self.waiting:
                batch = [self.waiting.popleft() for _ in range(min(BATCH, len(self.waiting)))]
                try:
                    written += self._write(batch)
                except DBAPIError as exc:
                    self.waiting.extendleft(reversed(batch))
                    log.warning("tracking events wait to be written: %s", str(exc.orig).strip().splitlines()[0]
                                if exc.orig is not None else exc)
                    break
        self.recorded += written
        return written

    def _write(self, batch: Sequence[Event]) -> int:
        try:
            return self._write_once(batch)
        except IntegrityError:
            # A reader erased (or a send deleted) between the look-up and the insert: look again.
            return self._write_once(batch)

    def _write_once(self, batch: Sequence[Event]) -> int:
        from pipeline.audience.subscribers import iterate
        from pipeline.db.schema import subscribers
        from pipeline.delivery.sends import send_exists

        # An import may hold SQLite's lock for minutes; the hits can wait in memory instead.
        with self.store.transaction(lock_wait=LOCK_WAIT) as conn:
            ids = sorted({e.subscriber_id for e in batch})
            readers = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                readers.update({s.id: s for s in iterate(conn, where=subscribers.c.id.in_(chunk))})
            live = {send_id for send_id in {e.send_id for e in batch} if send_exists(conn, send_id)}
            kept = [e for e in batch if e.send_id in live and e.subscriber_id in readers
                    and not declined(readers[e.subscriber_id].tags, readers[e.subscriber_id].fields)]
            record(conn, kept)
        self.refused += len(batch) - len(kept)
        return len(kept)
