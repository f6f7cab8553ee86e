"""Group commit: the ledger writes a sender's threads make before each message, run together.

Before its next message goes out, each sending thread writes one small transaction: the last
message it sent becomes `sent`, the next one `sending` (delivery.loop). A transaction costs far
more than its two statements (SQLite's BEGIN IMMEDIATE and COMMIT with their WAL frames, a round
trip and a WAL flush on PostgreSQL), and SQLite lets one writer in at a time anyway. So the
threads that need to write while one transaction runs wait, and the next transaction holds all
of their statements: one commit for several connections' messages.

Nothing about the crash rule changes. A thread still waits for the commit that marks its
message `sending` before the message goes out, and a transaction is all or nothing: if the
process dies before a group's commit, none of the group's messages went out and the rows each
thread had `sending` are still the one message it had on the wire (or had just had accepted).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from pipeline.db.raw import RawTransactions

Statement = tuple[str, Sequence[Any]]

# One writer at a time in this process: SQLite makes a second writer sleep in growing steps of
# milliseconds, while queueing here keeps the transactions back to back. Other processes still
# meet at the database's own lock.
WRITE_LOCK = threading.Lock()
# How long a transaction waits for the other threads' statements. A sending thread spends most
# of a message waiting for the server, so without a wait they seldom meet; a millisecond is
# little beside a message's round trips, and makes a commit serve every connection at once.
GATHER = 0.001


class _Request:
    """One thread's statements, waiting for the transaction that will hold them."""

    __slots__ = ("statements", "counts", "error", "woken", "leads")

    def __init__(self, statements: Sequence[Statement]) -> None:
        self.statements = statements
        self.counts: list[int] = []
        self.error: BaseException | None = None
        # Held from the start and let go to wake the thread: a bare lock costs far less than an
        # Event, and a thread is woken once a message.
        self.woken = threading.Lock()
        self.woken.acquire()
        self.leads = False  # woken to run the next transaction, not because its own was run

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        return self.counts


class GroupCommit:
    """Transactions of several threads run as one. No thread of its own: the first thread to
    arrive runs a transaction with the statements of every thread waiting by then, and hands the
    next one to the first thread that arrived meanwhile, so each thread soon goes back to its
    own connection."""

    def __init__(self, gather: float = GATHER) -> None:
        self.guard = threading.Lock()
        self.complete = threading.Condition(self.guard)  # every thread has asked: the gatherer goes on
        self.gathering = False
        self.waiting: list[_Request] = []
        self.busy = False
        self.gather = gather
        self.threads = 0  # threads that may still ask: a transaction waits for them a moment

    def join(self) -> None:
        with self.guard:
            self.threads += 1

    def leave(self) -> None:
        with self.guard:
            self.threads -= 1
            self._all_here()

    def _all_here(self) -> None:
        if self.gathering and len(self.waiting) >= self.threads:
            self.complete.notify()

    def run(self, raw: RawTransactions, statements: Sequence[Statement]) -> list[int]:
        """Run `statements` in a transaction, perhaps with other threads' statements; returns the
        row counts of this thread's statements once that transaction has committed. If it fails,
        every thread in it gets the error, and none of its statements took effect."""
        mine = _Request(statements)
        with self.guard:
            self.waiting.append(mine)
            leads, self.busy = not self.busy, True
            self._all_here()
        if not leads:
            mine.woken.acquire()
            if not mine.leads:
                return mine.result()
        self._commit(raw, mine)
        return mine.result()

    def _commit(self, raw: RawTransactions, mine: _Request) -> None:
        with self.guard:
            if len(self.waiting) < self.threads:
                self.gathering = True
                self.complete.wait(self.gather)
                self.gathering = False
            group, self.waiting = self.waiting, []
        try:
            with WRITE_LOCK:
                counts = raw.run([s for request in group for s in request.statements])
        except BaseException as exc:
            for request in group:
                request.error = exc
        else:
            at = 0
            for request in group:
                request.counts = counts[at:at + len(request.statements)]
                at += len(request.statements)
        with self.guard:
            if self.waiting:
                self.waiting[0].leads = True
                self.waiting[0].woken.release()
            else:
                self.busy = False
        for request in group:
            if request is not mine:
                request.woken.release()
