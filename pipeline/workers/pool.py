"""A worker process's transport connections, kept open from one batch to the next.

The sending loop opens a connection per slot and closes it when its run ends; a worker runs
one short batch after another, and a new SMTP session (TCP, EHLO, STARTTLS, AUTH) for each would
cost more than the batch. The pool is a connection factory like any other: "closing" a healthy
connection puts it back, and one that failed (a dropped link, an answer that never came) is
really closed. Connections idle longer than MAX_IDLE are closed rather than reused, before a
server's own idle timeout could drop them under a message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.delivery.transports import (
    Connection,
    ConnectionFactory,
    PermanentFailure,
    TemporaryFailure,
)
from pipeline.delivery.transports.stepwise import Steps

MAX_IDLE = 30.0  # seconds; servers drop idle sessions after a minute or more (Postfix: 300 s)


class Pool:
    def __init__(self, connect: ConnectionFactory, max_idle: float = MAX_IDLE) -> None:
        self.connect = connect
        self.max_idle = max_idle
        self.idle: list[tuple[Connection, float]] = []
        self.lock = threading.Lock()

    def __call__(self) -> Connection:
        stale: list[Connection] = []
        found: Connection | None = None
        with self.lock:
            while self.idle and found is None:
                connection, since = self.idle.pop()
                if time.monotonic() - since <= self.max_idle:
                    found = connection
                else:
                    stale.append(connection)
        for connection in stale:
            connection.close()
        return _Lent(self, found if found is not None else self.connect())

    def give_back(self, connection: Connection) -> None:
        with self.lock:
            self.idle.append((connection, time.monotonic()))

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for connection, _ in idle:
            connection.close()


class _Lent:
    """A pooled connection as the sending loop sees it."""

    def __init__(self, pool: Pool, inner: Connection) -> None:
        self.pool = pool
        self.inner = inner
        self.broken = False

    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        with self._watched():
            return self.inner.send(envelope_from, recipient, message)

    def steps(self, envelope_from: str, recipient: str, message: bytes) -> Steps:
        with self._watched():
            return (yield from self.inner.steps(envelope_from, recipient, message))

    @contextmanager
    def _watched(self) -> Iterator[None]:
        """Note a session that must not be lent again."""
        try:
            yield
        except TemporaryFailure as exc:
            self.broken = self.broken or exc.reconnect
            raise
        except PermanentFailure:
            raise  # the server answered: the session is fine
        except BaseException:
            self.broken = True  # the link broke mid-message, or something unforeseen: never reuse it
            raise

    def close(self) -> None:
        if self.broken:
            self.inner.close()
        else:
            self.pool.give_back(self.inner)
