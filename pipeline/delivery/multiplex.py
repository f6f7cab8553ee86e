"""One thread running every connection of a send: tasks that yield what they wait for.

Each of a run's connections is a task (a generator, delivery.loop) that yields a request and is
resumed with its answer:

- a transports.stepwise.Wait: resumed once its socket is ready, or TimeoutError is thrown in;
- a Commit: its statements run in a transaction, and the task gets their row counts (or the
  error: every task in a failed transaction gets it, and none of its statements took effect);
- a Sleep: resumed at that time.monotonic();
- a Blocking call: run in a helper thread (opening an SMTP session, which smtplib does only
  blocking), the task gets its result or its exception.

The commits of every task that asked while the others were busy run as one transaction, just
before the thread would wait for a socket: a transaction costs far more than its statements
(SQLite's BEGIN IMMEDIATE and COMMIT, a round trip and a WAL flush on PostgreSQL), so a send
pays one for all connections whose answers came together. Nothing about the crash rule
changes: a task still waits for the commit that marks its message `sending` before the message
goes out, and if the process dies before a commit, none of its messages went out.
"""

from __future__ import annotations

import heapq
import itertools
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from pipeline.db.raw import RawTransactions
from pipeline.delivery.transports.stepwise import Wait

Statement = tuple[str, Sequence[Any]]

# One writer at a time in this process: SQLite makes a second writer sleep in growing steps of
# milliseconds, while queueing here keeps the transactions of several sends back to back. Other
# processes still meet at the database's own lock.
WRITE_LOCK = threading.Lock()
# Longest sleep between looks at the clock: a task that waits for nothing still checks for a stop.
IDLE = 0.2


class Commit(NamedTuple):
    statements: Sequence[Statement]


class Sleep(NamedTuple):
    until: float  # time.monotonic()


class Blocking(NamedTuple):
    call: Callable[[], Any]


Request = Wait | Commit | Sleep | Blocking
Task = Generator[Request, Any, None]


class _Resume(NamedTuple):
    task: Task
    value: Any
    error: BaseException | None


class Multiplexer:
    """Runs tasks until each has ended; `died` hears of each task that raised (the others go on,
    and are expected to see the run stopping)."""

    def __init__(self, raw: RawTransactions, died: Callable[[BaseException], None], helpers: int = 1) -> None:
        self.raw = raw
        self.died = died
        self.ready: deque[_Resume] = deque()
        self.commits: list[tuple[Task, Commit]] = []
        self.sleeping: list[tuple[float, int, Task]] = []
        self.order = itertools.count()  # ties between sleepers, which do not compare
        # Tasks waiting on a socket, by its fd, with their deadlines. poll() rather than epoll: the
        # sockets waited on change with every message, which epoll would pay two syscalls for.
        self.waiting: dict[int, tuple[Task, float]] = {}
        self.poller = select.poll()
        self.helpers = ThreadPoolExecutor(max_workers=max(1, helpers), thread_name_prefix="campaign-connect")
        self.finished: deque[tuple[Task, Future[Any]]] = deque()
        self.bell_in, self.bell_out = socket.socketpair()  # a helper rings when its call is done
        self.bell_in.setblocking(False)
        self.bell = self.bell_in.fileno()
        self.poller.register(self.bell, select.POLLIN)

    def run(self, tasks: Sequence[Task]) -> None:
        alive = len(tasks)
        self.ready.extend(_Resume(task, None, None) for task in tasks)
        try:
            while alive:
                while self.ready:
                    alive -= self._step(self.ready.popleft())
                if self.commits:
                    # Answers already in join this transaction; then it runs, gathering no longer.
                    if self._poll(0):
                        while self.ready:
                            alive -= self._step(self.ready.popleft())
                    self._commit()
                elif alive:
                    self._poll(self._timeout())
                self._wake_sleepers()
        finally:
            for task in tasks:  # ended ones ignore this; any other gives back what it holds
                task.close()
            self.helpers.shutdown(wait=True)  # the calls in the background end too
            self.bell_in.close()
            self.bell_out.close()

    def _step(self, resume: _Resume) -> int:
        """Run one task to its next request; 1 if it ended."""
        task = resume.task
        try:
            request = task.throw(resume.error) if resume.error is not None else task.send(resume.value)
        except StopIteration:
            return 1
        except Exception as exc:
            self.died(exc)
            return 1
        if isinstance(request, Wait):
            self.poller.register(request.fileno, select.POLLOUT if request.write else select.POLLIN)
            self.waiting[request.fileno] = (task, time.monotonic() + request.timeout)
        elif isinstance(request, Commit):
            self.commits.append((task, request))
        elif isinstance(request, Sleep):
            heapq.heappush(self.sleeping, (request.until, next(self.order), task))
        elif isinstance(request, Blocking):
            future = self.helpers.submit(request.call)
            future.add_done_callback(lambda done, task=task: self._rung(task, done))
        else:
            self.ready.append(_Resume(task, None, TypeError(f"a task cannot wait for {request!r}")))
        return 0

    def in_background(self, call: Callable[[], object]) -> None:
        """Run `call` in a helper thread, nobody waiting for it (closing a connection that may
        hang); the run ends only after it has."""
        self.helpers.submit(call)

    def _rung(self, task: Task, done: Future[Any]) -> None:  # in the helper thread
        self.finished.append((task, done))
        try:
            self.bell_out.send(b"\0")
        except OSError:
            pass  # the run is over and its socket closed: nobody is left to wake

    def _poll(self, timeout: float) -> bool:
        """Resume the tasks whose sockets are ready (or overdue); whether any was."""
        found = False
        # An error or hang-up counts as ready too: the task's own read or write then says what happened.
        for fd, _ in self.poller.poll(timeout * 1000):
            found = True
            if fd == self.bell:
                self._answered()
                continue
            self.poller.unregister(fd)
            self.ready.append(_Resume(self.waiting.pop(fd)[0], None, None))
        now = time.monotonic()
        for fd, (task, deadline) in list(self.waiting.items()):
            if deadline <= now:
                found = True
                self.poller.unregister(fd)
                del self.waiting[fd]
                self.ready.append(_Resume(task, None, TimeoutError("timed out")))
        return found

    def _answered(self) -> None:
        try:
            while self.bell_in.recv(64):
                pass
        except BlockingIOError:
            pass
        while self.finished:
            task, done = self.finished.popleft()
            error = done.exception()
            self.ready.append(_Resume(task, None if error else done.result(), error))

    def _timeout(self) -> float:
        now = time.monotonic()
        moments = [now + IDLE, *(deadline for _, deadline in self.waiting.values())]
        if self.sleeping:
            moments.append(self.sleeping[0][0])
        return max(0.0, min(moments) - now)

    def _wake_sleepers(self) -> None:
        now = time.monotonic()
        while self.sleeping and self.sleeping[0][0] <= now:
            self.ready.append(_Resume(heapq.heappop(self.sleeping)[2], None, None))

    def _commit(self) -> None:
        group, self.commits = self.commits, []
        try:
            with WRITE_LOCK:
                counts = self.raw.run([s for _, commit in group for s in commit.statements])
        except Exception as exc:
            self.ready.extend(_Resume(task, None, exc) for task, _ in group)
            return
        at = 0
        for task, commit in group:
            self.ready.append(_Resume(task, counts[at:at + len(commit.statements)], None))
            at += len(commit.statements)
