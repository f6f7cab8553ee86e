"""Subscribers: the list, its tags and custom fields, and permanent suppression.

An unsubscribed, bounced or complained address is never a recipient again unless an import
says --resubscribe; an erased address leaves only a hash in `suppressions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from pipeline.audience.addresses import (
    InvalidEmail,
    email_hash,
    email_key,
    normalize_email,
)
from pipeline.audience.values import (
    clean_tag,
    validate_field_name,
    width_problem,
)
from pipeline.clock import human, utcnow
from pipeline.db.schema import (
    STATUSES,
    SUPPRESSED,
    custom_fields,
    subscriber_events,
    subscriber_tags,
    subscribers,
    suppressions,
)
from pipeline.engagement.events import forget as forget_engagement
from pipeline.errors import NotFoundError, SubscriberError


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    first_name: str | None
    last_name: str | None
    tags: tuple[str, ...]
    fields: Mapping[str, Any]
    timezone: str | None
    status: str
    consent_source: str | None
    consent_at: datetime | None
    signed_up: datetime
    created_at: datetime
    updated_at: datetime

    def merge_values(self) -> dict[str, object]:
        return merge_values(self.fields, self.email, self.first_name, self.last_name, self.timezone)

    @property
    def name(self) -> str | None:
        return display_name(self.first_name, self.last_name)


def merge_values(fields: Mapping[str, Any], email: str, first_name: str | None, last_name: str | None,
                 timezone: str | None) -> dict[str, object]:
    """What merge tags see: custom fields first, so a field cannot shadow a built-in."""
    return {**fields, "email": email, "first_name": first_name or "", "last_name": last_name or "",
            "timezone": timezone or ""}


def display_name(first_name: str | None, last_name: str | None) -> str | None:
    """"Ana Lima", "Ana", or None: the name in a To: header or a picker."""
    return " ".join(n for n in (first_name, last_name) if n) or None


@dataclass
class Changes:
    """New values for a subscriber; None means "leave as it is"."""

    first_name: str | None = None
    last_name: str | None = None
    tags: set[str] = field(default_factory=set)
    fields: dict[str, Any] = field(default_factory=dict)
    timezone: str | None = None
    consent_source: str | None = None
    consent_at: datetime | None = None
    signed_up: datetime | None = None


def _row_to_subscriber(row: Row[Any], tags: Iterable[str]) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, first_name=row.first_name, last_name=row.last_name,
        tags=tuple(sorted(tags)), fields=dict(row.fields or {}), timezone=row.timezone,
        status=row.status, consent_source=row.consent_source, consent_at=row.consent_at,
        signed_up=row.signed_up, created_at=row.created_at, updated_at=row.updated_at,
    )


def tags_for(conn: Connection, ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        query = sa.select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag).where(
            subscriber_tags.c.subscriber_id.in_(chunk))
        for subscriber_id, tag in conn.execute(query):
            found[subscriber_id].append(tag)
    return found


def load(conn: Connection, rows: Sequence[Row[Any]]) -> list[Subscriber]:
    tags = tags_for(conn, [r.id for r in rows])
    return [_row_to_subscriber(r, tags[r.id]) for r in rows]


def find(conn: Connection, address: str) -> Subscriber | None:
    row = conn.execute(sa.select(subscribers).where(subscribers.c.email_key == email_key(address.strip()))).first()
    return load(conn, [row])[0] if row else None


def get(conn: Connection, address: str) -> Subscriber:
    found = find(conn, address)
    if found is None:
        raise NotFoundError(f"no subscriber {address.strip()!r}")
    return found


def is_erased(conn: Connection, address: str) -> bool:
    query = sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash == email_hash(address))
    return conn.execute(query).first() is not None


def record_event(conn: Connection, subscriber_id: int | None, kind: str, source: str,
                 detail: str | None = None) -> None:
    conn.execute(subscriber_events.insert().values(
        subscriber_id=subscriber_id, kind=kind, detail=detail, source=source, created_at=utcnow()))


def register_fields(conn: Connection, names: Iterable[str]) -> None:
    wanted = set(names)
    if not wanted:
        return
    known = set(conn.execute(sa.select(custom_fields.c.name).where(custom_fields.c.name.in_(wanted))).scalars())
    missing = sorted(wanted - known)
    if missing:
        conn.execute(custom_fields.insert(), [{"name": n} for n in missing])


def known_fields(conn: Connection) -> list[str]:
    return sorted(conn.execute(sa.select(custom_fields.c.name)).scalars())


def add(conn: Connection, address: str, changes: Changes, source: str) -> tuple[Subscriber, bool]:
    """Add a subscriber, or update the one with this address; returns it and whether it is new.

    A suppressed or erased address is refused: only an import with --resubscribe brings it back.
    """
    try:
        normalized = normalize_email(address)
    except InvalidEmail as exc:
        raise SubscriberError(f"{address.strip()!r} is not a valid e-mail address: {exc}") from None
    existing = find(conn, normalized)
    if existing is not None and existing.status in SUPPRESSED:
        raise SubscriberError(f"{existing.email} is {existing.status}; it stays off the list")
    if existing is None and is_erased(conn, normalized):
        raise SubscriberError(f"{normalized} was erased and is suppressed; it stays off the list")
    for column, value in (("first_name", changes.first_name), ("last_name", changes.last_name),
                          ("consent_source", changes.consent_source)):
        if problem := width_problem(column, value):
            raise SubscriberError(problem)
    now = utcnow()
    for name in changes.fields:
        validate_field_name(name)
    register_fields(conn, changes.fields)
    if existing is None:
        subscriber_id = conn.execute(subscribers.insert().values(
            email=normalized, email_key=email_key(normalized), first_name=changes.first_name,
            last_name=changes.last_name, fields=changes.fields, timezone=changes.timezone,
            status="subscribed", consent_source=changes.consent_source or source,
            consent_at=changes.consent_at or now, signed_up=changes.signed_up or now,
            created_at=now, updated_at=now,
        )).inserted_primary_key[0]
        add_tags(conn, [subscriber_id], changes.tags)
        record_event(conn, subscriber_id, "subscribed", source)
        return get(conn, normalized), True
    values: dict[str, Any] = {k: v for k, v in (("first_name", changes.first_name),
                                                 ("last_name", changes.last_name),
                                                 ("timezone", changes.timezone)) if v is not None}
    if changes.fields:
        values["fields"] = {**existing.fields, **changes.fields}
    if values:
        conn.execute(subscribers.update().where(subscribers.c.id == existing.id).values(**values, updated_at=now))
    add_tags(conn, [existing.id], changes.tags)
    return get(conn, normalized), False


def request_pending(conn: Connection, address: str, first_name: str | None, tags: Iterable[str], source: str,
                    now: datetime) -> tuple[Subscriber | None, bool]:
    """A signup (audience.signup): a new `pending` subscriber, or the pending one with this
    address brought up to date (first name, tags added); and whether it is new. None for anyone
    else: a subscriber is left exactly as they are, and a suppressed or erased address stays off."""
    existing = find(conn, address)
    if existing is None and not is_erased(conn, address):
        try:
            with conn.begin_nested():  # two signups of one new address at once: the second finds the first
                subscriber_id = conn.execute(subscribers.insert().values(
                    email=address, email_key=email_key(address), first_name=first_name, fields={}, status="pending",
                    consent_source=source, signed_up=now, created_at=now, updated_at=now)).inserted_primary_key[0]
        except IntegrityError:
            existing = find(conn, address)
        else:
            add_tags(conn, [subscriber_id], tags)
            record_event(conn, subscriber_id, "pending", source)
            return by_id(conn, subscriber_id), True
    if existing is None or existing.status != "pending":
        return None, False
    conn.execute(subscribers.update().where(subscribers.c.id == existing.id).values(
        first_name=first_name or existing.first_name, updated_at=now))
    add_tags(conn, [existing.id], tags)
    return by_id(conn, existing.id), False


def confirm_pending(conn: Connection, subscriber_id: int, source: str, detail: str | None, now: datetime) -> bool:
    """A pending subscriber becomes subscribed, consenting now; False for anyone not pending. Only
    one of two confirmations at once changes the row: the other finds it subscribed."""
    done = conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id, subscribers.c.status == "pending")
                        .values(status="subscribed", consent_source=source, consent_at=now, updated_at=now))
    if done.rowcount:
        record_event(conn, subscriber_id, "subscribed", source, detail)
    return bool(done.rowcount)


def purge_pending(conn: Connection, before: datetime, source: str) -> int:
    """Delete pending subscribers whose latest signup was before `before` (with their tags and
    consent records); returns how many."""
    count = int(conn.execute(subscribers.delete().where(subscribers.c.status == "pending",
                                                        subscribers.c.updated_at < before)).rowcount or 0)
    if count:
        record_event(conn, None, "purged", source, f"{count} pending, unconfirmed since before {human(before)}")
    return count


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    source: str
    detail: str | None


def events_of(conn: Connection, subscriber_id: int) -> list[Event]:
    """A subscriber's history, oldest first."""
    rows = conn.execute(sa.select(subscriber_events).where(subscriber_events.c.subscriber_id == subscriber_id)
                        .order_by(subscriber_events.c.created_at, subscriber_events.c.id))
    return [Event(row.created_at, row.kind, row.source, row.detail) for row in rows]


def add_tags(conn: Connection, ids: Sequence[int], tags: Iterable[str]) -> int:
    """Give every subscriber in ids every tag; returns how many tags were new."""
    wanted = sorted(set(tags))
    if not ids or not wanted:
        return 0
    have = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        have.update((row.subscriber_id, row.tag) for row in conn.execute(
            sa.select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag).where(
                subscriber_tags.c.subscriber_id.in_(chunk), subscriber_tags.c.tag.in_(wanted))))
    rows = [{"subscriber_id": i, "tag": t} for i in ids for t in wanted if (i, t) not in have]
    if rows:
        conn.execute(subscriber_tags.insert(), rows)
    return len(rows)


def _ids(conn: Connection, addresses: Iterable[str]) -> list[tuple[str, int]]:
    out = []
    for address in addresses:
        subscriber = get(conn, address)
        out.append((subscriber.email, subscriber.id))
    return out


def tag(conn: Connection, addresses: Iterable[str], tags: Iterable[str]) -> int:
    return add_tags(conn, [i for _, i in _ids(conn, addresses)], [clean_tag(t) for t in tags])


def untag(conn: Connection, addresses: Iterable[str], tags: Iterable[str]) -> int:
    ids = [i for _, i in _ids(conn, addresses)]
    wanted = [clean_tag(t) for t in tags]
    result = conn.execute(subscriber_tags.delete().where(
        subscriber_tags.c.subscriber_id.in_(ids), subscriber_tags.c.tag.in_(wanted)))
    return result.rowcount


def set_status(conn: Connection, subscriber: Subscriber, status: str, source: str,
               detail: str | None = None) -> bool:
    """Change a subscriber's status and record it; returns False when it already was that."""
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r} (known: {', '.join(STATUSES)})")
    if subscriber.status == status:
        return False
    conn.execute(subscribers.update().where(subscribers.c.id == subscriber.id).values(
        status=status, updated_at=utcnow()))
    record_event(conn, subscriber.id, status, source, detail)
    return True


def unsubscribe(conn: Connection, addresses: Iterable[str], source: str) -> list[tuple[str, bool]]:
    """Unsubscribe each address; returns (address, changed) pairs. Unknown addresses are an error."""
    results = []
    for address in addresses:
        subscriber = get(conn, address)
        results.append((subscriber.email, set_status(conn, subscriber, "unsubscribed", source)))
    return results


def erase(conn: Connection, address: str, source: str) -> str:
    """Remove a subscriber's personal data, keeping a hash so the address is never mailed again."""
    subscriber = get(conn, address)
    conn.execute(subscriber_events.update().where(subscriber_events.c.subscriber_id == subscriber.id)
                 .values(detail=None))
    forget_engagement(conn, subscriber.id)  # what tracking recorded of them: their opens and clicks
    conn.execute(subscribers.delete().where(subscribers.c.id == subscriber.id))
    digest = email_hash(subscriber.email)
    if not is_erased(conn, subscriber.email):
        conn.execute(suppressions.insert().values(email_hash=digest, reason="erased", created_at=utcnow()))
    record_event(conn, None, "erased", source, f"sha256:{digest}")
    return subscriber.email


def count_by_status(conn: Connection) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
    counts.update({status: n for status, n in conn.execute(query)})
    counts["erased"] = int(conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar() or 0)
    return counts


def iterate(conn: Connection, where: sa.ColumnElement[bool] | None = None, batch: int = 1000,
            limit: int | None = None, status: str | None = None) -> Iterator[Subscriber]:
    """Subscribers in id order (of one status, if given), a batch at a time: a million rows never sit in memory."""
    if status is not None:
        where = subscribers.c.status == status if where is None else sa.and_(where, subscribers.c.status == status)
    last, seen = 0, 0
    while limit is None or seen < limit:
        query = sa.select(subscribers).where(subscribers.c.id > last).order_by(subscribers.c.id).limit(
            batch if limit is None else min(batch, limit - seen))
        if where is not None:
            query = query.where(where)
        rows = conn.execute(query).all()
        if not rows:
            return
        for subscriber in load(conn, rows):
            yield subscriber
        seen += len(rows)
        last = rows[-1].id


def by_id(conn: Connection, subscriber_id: int, *, lock: bool = False) -> Subscriber | None:
    """The subscriber, or None when the id names no one (an erased person).

    With lock, the row stays locked until the transaction ends, so two changes to one subscriber
    (a mail client that sends its one-click POST twice, a bounce import beside the web pages) run
    one after the other on PostgreSQL, each seeing the other's result. SQLite's writing
    transactions already run one at a time, and it has no FOR UPDATE.
    """
    query = sa.select(subscribers).where(subscribers.c.id == subscriber_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return load(conn, [row])[0] if row else None
