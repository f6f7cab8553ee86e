"""Recipients: who a copy is for and what its merge tags are filled with.

One type for every copy: a send's deliveries, `render --as`, `test-send` and each reader the
preview offers. A recipient without a subscriber id is not on the list (the made-up sample,
a test address); their links are the sample's, which sign nobody in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from pipeline.audience.segments import Segment, sample
from pipeline.audience.subscribers import Subscriber, find, get

SAMPLE = "sample"
PREVIEW_RECIPIENTS = 25


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int | None  # None: not a subscriber (the sample, a test address)
    email: str
    name: str | None
    values: Mapping[str, object]  # what merge tags see, without the links (added per copy)

    @property
    def label(self) -> str:
        """How a picker names them: "sample", "Ana Lima <ana@example.com>" or the address."""
        if self.subscriber_id is None:
            return SAMPLE
        return f"{self.name} <{self.email}>" if self.name else self.email


def of_subscriber(subscriber: Subscriber) -> Recipient:
    return Recipient(subscriber.id, subscriber.email, subscriber.name, subscriber.merge_values())


def sample_recipient(email: str | None = None) -> Recipient:
    """Made-up subscriber data for previews; with `email`, a test address filled in with it."""
    address = email or "alex.rivera@example.com"
    values = {"first_name": "Alex", "last_name": "Rivera", "email": address}
    return Recipient(None, address, None if email else "Alex Rivera", values)


def lookup(conn: Connection, who: str) -> Recipient | None:
    """"sample", or the subscriber with that address; None when nobody has it."""
    if who == SAMPLE:
        return sample_recipient()
    found = find(conn, who)
    return of_subscriber(found) if found else None


def require(conn: Connection, who: str) -> Recipient:
    """Like lookup, but an unknown address is a NotFoundError naming it (`render --as`)."""
    return sample_recipient() if who == SAMPLE else of_subscriber(get(conn, who))


def preview_recipients(conn: Connection, segment: Segment, also: str | None = None) -> list[Recipient]:
    """The sample, then the first readers of the segment (and `also`, if it names a subscriber)."""
    chosen = [of_subscriber(s) for s in sample(conn, segment, PREVIEW_RECIPIENTS)]
    if also and also != SAMPLE and all(r.email.lower() != also.lower() for r in chosen):
        extra = lookup(conn, also)
        if extra is not None:
            chosen.insert(0, extra)
    return [sample_recipient(), *chosen]
