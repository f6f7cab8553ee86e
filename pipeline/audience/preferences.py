"""What the unsubscribe and preferences pages change: a reader's status and topic tags.

Every change is recorded in subscriber_events with its source (which page or mail client) and,
in the detail, the campaign whose email carried the link.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from pipeline.audience.subscribers import (
    Subscriber,
    add_tags,
    by_id,
    record_event,
    set_status,
)
from pipeline.audience.tokens import LinkData, Tokens
from pipeline.db.schema import subscriber_tags

ONE_CLICK = "web:one-click"  # a mail client's unsubscribe button (RFC 8058)
CONFIRM = "web:confirm"  # the button on the unsubscribe page
PREFERENCES = "web:preferences"  # the preferences page


@dataclass(frozen=True)
class TopicChange:
    subscriber: Subscriber | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def detail(link: LinkData, **more: object) -> str:
    """What a change's event records of the link it came by: the campaign whose email carried it."""
    return json.dumps({"campaign": link.campaign, **more})


def reader(conn: Connection, tokens: Tokens, link: LinkData, *, lock: bool = False) -> Subscriber | None:
    """The subscriber a link was made for; None when they were erased, whoever has their id now."""
    subscriber = by_id(conn, link.subscriber_id, lock=lock)
    return subscriber if subscriber is not None and tokens.belongs(link, subscriber.email) else None


def unsubscribe(conn: Connection, tokens: Tokens, link: LinkData, source: str) -> Subscriber | None:
    """Unsubscribe the link's reader; returns them as they are now, or None if they were erased.

    Doing it twice changes nothing the second time. A bounced or complained address stays as it
    is: it is already never mailed, and its status says more than "unsubscribed" would.
    """
    subscriber = reader(conn, tokens, link, lock=True)
    if subscriber is None or subscriber.status != "subscribed":
        return subscriber
    set_status(conn, subscriber, "unsubscribed", source, detail(link))
    return by_id(conn, subscriber.id)


def choose_topics(conn: Connection, tokens: Tokens, link: LinkData, topics: Mapping[str, str],
                  chosen: Iterable[str]) -> TopicChange:
    """Give the reader exactly the chosen topics' tags; tags that are not topics stay as they are.

    Names that are not topics (a forged form) are ignored. Only a subscribed reader's topics change:
    the page offers no choices to anyone else.
    """
    subscriber = reader(conn, tokens, link, lock=True)
    if subscriber is None or subscriber.status != "subscribed":
        return TopicChange(subscriber)
    wanted = set(chosen) & set(topics)
    having = set(subscriber.tags) & set(topics)
    added, removed = sorted(wanted - having), sorted(having - wanted)
    if not added and not removed:
        return TopicChange(subscriber)
    add_tags(conn, [subscriber.id], added)
    if removed:
        conn.execute(subscriber_tags.delete().where(subscriber_tags.c.subscriber_id == subscriber.id,
                                                    subscriber_tags.c.tag.in_(removed)))
    record_event(conn, subscriber.id, "topics", PREFERENCES, detail(link, added=added, removed=removed))
    return TopicChange(by_id(conn, subscriber.id), tuple(added), tuple(removed))
