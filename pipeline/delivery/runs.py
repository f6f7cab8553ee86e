"""What a send run is asked to do (connections, pace, limits, retries) and what it reports back.

Kept apart from the loop that does the sending: the command line, the tick and the workers
build these without needing the loop itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from pipeline.delivery.ledger import Batch
from pipeline.errors import SendError
from pipeline.settings.workspace import RATE


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
            raise SendError(f"--rate {text!r} is not a rate like '50/s' or '1000/h'")
        count, unit = float(match.group(1)), match.group(2)[0]
        seconds = {"s": 1, "m": 60, "h": 3600}[unit]
        return cls(count / seconds if count else None)

    def next_slot(self) -> float:
        """The time.monotonic() at which the caller may send its next message."""
        with self.lock:
            slot = max(self.next, time.monotonic())
            self.next = slot + self.interval
        return slot


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

    def merged(self, later: SendReport) -> SendReport:
        """This run's report and a later run's as one: counts added, the later run's end kept."""
        counted = ("sent", "failed", "retrying", "skipped", "bounced", "unknown")
        both = SendReport(**{name: getattr(self, name) + getattr(later, name) for name in counted})
        both.stopped, both.paused, both.limited = later.stopped, later.paused, later.limited
        both.error = later.error or self.error
        return both


@dataclass
class SendOptions:
    concurrency: int = 4
    rate: RateLimit = field(default_factory=lambda: RateLimit(None))
    limit: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deadline: float | None = None  # time.monotonic() after which no new message is started
    batch: Batch | None = None  # claim only these deliveries (a `campaign worker` task's batch)
