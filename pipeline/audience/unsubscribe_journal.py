"""Unsubscribes that never wait behind the database's write lock.

SQLite lets one writer in at a time, and an import of a big file is one long transaction. A
reader who presses unsubscribe meanwhile must still be answered at once (mail providers give an
RFC 8058 one-click POST a few seconds), and must never be mailed again. So on SQLite the web
pages first record the request in a journal beside the database, `campaign.db-unsubscribes`: a
small SQLite file of its own, written in a moment, which no import or send ever locks for
long. Then they apply it to the database if the write lock comes within a fraction of a
second, and otherwise leave it to a task that keeps trying until the lock frees. Every sender
applies the journal inside its claim transaction too, before it looks at whom to mail: a send
that starts while an entry is pending skips that reader.

Applying an entry is idempotent (a reader who is no longer subscribed is left alone), and the
entry is removed only once the database holds its result: a crash or a rolled-back transaction
leaves it to be applied again, never lost. An entry never undoes a later subscription: a reader
subscribed again after they clicked stays subscribed.

PostgreSQL locks rows, not the database, so there the pages change the database directly and
there is no journal.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from pipeline.audience import preferences
from pipeline.audience.addresses import email_hash
from pipeline.audience.subscribers import Subscriber, by_id, set_status
from pipeline.audience.tokens import LinkData, Tokens
from pipeline.clock import parse_utc, sql_time, utcnow
from pipeline.db.schema import subscriber_events
from pipeline.errors import StoreError

if TYPE_CHECKING:
    from pipeline.db.engine import Store

log = logging.getLogger("campaign.web")
SUFFIX = "-unsubscribes"
# How long a page waits for the database's write lock before leaving the change to the journal;
# well inside the second a one-click unsubscribe is answered in.
PAGE_WAIT = 0.25
_BUSY_SECONDS = 5.0  # the journal's own lock is only ever held for a moment
_SCHEMA = ("CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY AUTOINCREMENT, "
           "subscriber_id INTEGER NOT NULL, email_hash TEXT NOT NULL, source TEXT NOT NULL, "
           "detail TEXT, created_at TEXT NOT NULL)")


@dataclass(frozen=True)
class Entry:
    id: int
    subscriber_id: int
    email_hash: str  # whose unsubscribe it is, without keeping their address in another file
    source: str
    detail: str | None
    created_at: datetime


class Journal:
    """The pending unsubscribes of one SQLite database, in the file beside it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self, create: bool) -> Iterator[sqlite3.Connection | None]:
        if not create and not self.path.exists():
            yield None  # nothing was ever journaled: senders pay one stat() per claim
            return
        uri = f"file:{quote(str(self.path))}?mode={'rwc' if create else 'rw'}"
        try:
            with closing(sqlite3.connect(uri, uri=True, timeout=_BUSY_SECONDS, isolation_level=None)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for the pages' writes
                conn.execute("PRAGMA synchronous=FULL")  # "you are unsubscribed" survives a power cut
                if create:
                    conn.execute(_SCHEMA)
                yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the unsubscribe journal: {exc}", where=self.path) from None

    def add(self, subscriber: Subscriber, source: str, detail: str | None) -> None:
        with self._connect(create=True) as conn:
            assert conn is not None
            conn.execute("INSERT INTO pending (subscriber_id, email_hash, source, detail, created_at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (subscriber.id, email_hash(subscriber.email), source, detail, sql_time(utcnow())))

    def pending(self) -> list[Entry]:
        with self._connect(create=False) as conn:
            if conn is None:
                return []
            try:
                rows = conn.execute("SELECT id, subscriber_id, email_hash, source, detail, created_at "
                                    "FROM pending ORDER BY id").fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []  # made this instant by a page that has not created its table yet
                raise
        return [Entry(row[0], row[1], row[2], row[3], row[4], parse_utc(row[5])) for row in rows]

    def remove(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._connect(create=False) as conn:
            if conn is not None:
                conn.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in ids])


def journal_for(engine: Engine) -> Journal | None:
    """The journal of a SQLite database file; None on PostgreSQL and for in-memory databases."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(url.database)
    return Journal(database.with_name(database.name + SUFFIX))


def _subscribed_since(conn: Connection, subscriber_id: int, moment: datetime) -> bool:
    latest = conn.execute(sa.select(sa.func.max(subscriber_events.c.created_at)).where(
        subscriber_events.c.subscriber_id == subscriber_id, subscriber_events.c.kind == "subscribed")).scalar()
    return latest is not None and latest > moment


def _apply(conn: Connection, journal: Journal) -> list[int]:
    """Apply every pending entry in conn's writing transaction. Entries with nothing left to do
    are removed now; the ids of those applied are returned, to remove once conn has committed."""
    applied, settled = [], []
    for entry in journal.pending():
        subscriber = by_id(conn, entry.subscriber_id, lock=True)
        if (subscriber is None or email_hash(subscriber.email) != entry.email_hash
                or subscriber.status != "subscribed" or _subscribed_since(conn, subscriber.id, entry.created_at)):
            settled.append(entry.id)  # erased, already off the list, or subscribed again since
            continue
        set_status(conn, subscriber, "unsubscribed", entry.source, entry.detail)
        applied.append(entry.id)
    journal.remove(settled)
    return applied


def apply_pending_unsubscribes(conn: Connection) -> int:
    """Apply journaled unsubscribes inside the caller's writing transaction (a sender's claim),
    so no one whose unsubscribe is pending is claimed; returns how many readers it unsubscribed.

    The entries applied stay in the journal until a later call finds them done: if the caller
    rolls back, they are applied again rather than lost.
    """
    journal = journal_for(conn.engine)
    return len(_apply(conn, journal)) if journal is not None else 0


def _locked(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")


class Unsubscribes:
    """Unsubscribing from the web pages: at once where the database allows, journaled otherwise."""

    def __init__(self, store: Store, tokens: Tokens, page_wait: float = PAGE_WAIT) -> None:
        self.store = store
        self.tokens = tokens
        self.page_wait = page_wait
        self.journal = journal_for(store.engine)
        # Whether the last try found the lock taken: while it is, pages journal and answer without
        # trying again themselves (a retrying task is on it), so a crowd of clicks during an import
        # does not hold every worker thread for page_wait each.
        self.locked = False

    def unsubscribe(self, link: LinkData, source: str) -> tuple[Subscriber | None, bool]:
        """Unsubscribe the link's reader; returns them (None if erased) and whether the change
        is still pending in the journal. Never waits for long."""
        if self.journal is not None:
            # Reading needs no lock: SQLite's WAL lets readers in beside any writer.
            with self.store.reading() as conn:
                subscriber = preferences.reader(conn, self.tokens, link)
            if subscriber is None or subscriber.status != "subscribed":
                return subscriber, False  # nothing to change, as preferences.unsubscribe would find
            try:
                self.journal.add(subscriber, source, preferences.detail(link))
            except StoreError as exc:
                # A journal that cannot be written (its folder's permissions): waiting for the
                # lock is slow, but loses nothing.
                log.warning("%s; unsubscribing directly", exc)
            else:
                return subscriber, self.locked or not self.apply(self.page_wait)
        with self.store.transaction() as conn:
            return preferences.unsubscribe(conn, self.tokens, link, source), False

    def pending(self) -> bool:
        return self.journal is not None and bool(self.journal.pending())

    def apply(self, wait: float) -> bool:
        """Apply the journal in a transaction of its own, waiting at most `wait` seconds for the
        write lock; False when the lock stayed taken and entries are still pending."""
        if self.journal is None or not self.journal.pending():
            return True
        try:
            with self.store.transaction(lock_wait=wait) as conn:
                applied = _apply(conn, self.journal)
        except OperationalError as exc:
            if _locked(exc):
                self.locked = True
                return False
            raise
        self.locked = False
        self.journal.remove(applied)  # committed: the database holds them now
        return True
