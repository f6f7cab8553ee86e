"""Recurring digests: each occurrence gathers what its source published since the last one.

An occurrence with nothing new is skipped; one with news becomes a send of its own, with its
content fixed and its articles recorded, so no article ever goes out twice. If occurrences
were missed (the scheduler was down), only the latest is made: nobody wants three digests at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.segments import segment_or_everyone
from pipeline.content.build import build
from pipeline.db.engine import Store
from pipeline.db.schema import digest_articles, recurrences
from pipeline.delivery.frozen import freeze
from pipeline.delivery.ledger import snapshot
from pipeline.delivery.sends import SendRow, create_send
from pipeline.errors import RecurringError
from pipeline.settings.campaign import CampaignSettings, load_campaign
from pipeline.settings.workspace import Workspace
from pipeline.timing.feeds import SourceItem, read_source
from pipeline.timing.idle import settings_stamp
from pipeline.timing.recurrence import Recurrence, parse_recurrence
from pipeline.timing.schedule import default_zone

_DATE = re.compile(r"\{date(?::([^{}]*))?\}")


def recurrence_of(workspace: Workspace, settings: CampaignSettings) -> Recurrence:
    assert settings.recurrence is not None
    tz = default_zone(workspace, settings.timezone)
    return parse_recurrence(settings.recurrence, tz, where=f"{settings.path}: recurrence")


def occurrence_subject(subject: str, moment: datetime, recurrence: Recurrence) -> str:
    """The subject with {date} or {date:%B %Y} filled in with the occurrence's local date."""
    local = moment.astimezone(recurrence.trigger.timezone)
    return _DATE.sub(lambda m: local.strftime(m.group(1) or "%Y-%m-%d"), subject)


@dataclass(frozen=True)
class Series:
    campaign: str
    recurrence: Recurrence
    started_at: datetime
    last_occurrence: datetime | None
    next_at: datetime | None = None  # as stored for the idle check, from settings.toml as it was then
    settings_stamp: str | None = None

    def next_occurrence(self) -> datetime:
        return self.recurrence.next_after(self.last_occurrence or self.started_at)


def start(store: Store, workspace: Workspace, slug: str, now: datetime) -> Series:
    """Start a recurring campaign: its first occurrence is the next one after now."""
    settings = load_campaign(workspace, slug)
    if not settings.recurrence:
        raise RecurringError(f"{slug} has no recurrence; give --at to schedule it once")
    recurrence = recurrence_of(workspace, settings)
    with store.transaction() as conn:
        row = conn.execute(sa.select(recurrences).where(recurrences.c.campaign == slug)).first()
        if row is None:
            conn.execute(recurrences.insert().values(campaign=slug, started_at=now, updated_at=now,
                                                     next_at=recurrence.next_after(now),
                                                     settings_stamp=settings_stamp(settings.path)))
            return Series(slug, recurrence, now, None)
        return Series(slug, recurrence, row.started_at, row.last_occurrence, row.next_at, row.settings_stamp)


def stop(store: Store, slug: str) -> None:
    with store.transaction() as conn:
        if conn.execute(recurrences.delete().where(recurrences.c.campaign == slug)).rowcount == 0:
            raise RecurringError(f"{slug} is not running as a recurring campaign")


def series(conn: Connection, workspace: Workspace, settings: CampaignSettings) -> Series | None:
    row = conn.execute(sa.select(recurrences).where(recurrences.c.campaign == settings.slug)).first()
    if row is None or not settings.recurrence:
        return None
    return Series(settings.slug, recurrence_of(workspace, settings), row.started_at, row.last_occurrence,
                  row.next_at, row.settings_stamp)


@dataclass(frozen=True)
class Occurrence:
    campaign: str
    moment: datetime
    send: SendRow | None  # None: skipped, nothing new
    articles: int


def _new_items(items: list[SourceItem], sent: set[str], since: datetime, limit: int) -> list[SourceItem]:
    fresh = [i for i in items if i.key not in sent and (i.published is None or i.published > since)]
    fresh.sort(key=lambda i: i.published or since, reverse=True)
    return fresh[:limit]


def run_due(store: Store, workspace: Workspace, settings: CampaignSettings, now: datetime) -> Occurrence | None:
    """Make the occurrence that is due, if any: a send with its content fixed, or a skip."""
    with store.reading() as conn:
        current = series(conn, workspace, settings)
    if current is None:
        return None
    since = current.last_occurrence or current.started_at
    due = current.recurrence.latest_until(since, now)
    if due is None:
        stamp = settings_stamp(settings.path)
        if stamp != current.settings_stamp or current.next_at != current.next_occurrence():
            with store.transaction() as conn:  # unknown yet, or settings.toml changed: for the idle check
                conn.execute(recurrences.update().where(recurrences.c.campaign == settings.slug).values(
                    next_at=current.next_occurrence(), settings_stamp=stamp, updated_at=now))
        return None
    items = read_source(settings.source or "", settings.directory)  # before the transaction: it may be slow
    with store.transaction() as conn:
        row = conn.execute(sa.select(recurrences).where(recurrences.c.campaign == settings.slug)
                           .with_for_update()).first()
        if row is None or (row.last_occurrence is not None and row.last_occurrence >= due):
            return None  # stopped meanwhile, or another process made this occurrence
        conn.execute(recurrences.update().where(recurrences.c.campaign == settings.slug).values(
            last_occurrence=due, updated_at=now, next_at=current.recurrence.next_after(due),
            settings_stamp=settings_stamp(settings.path)))
        sent = set(conn.execute(sa.select(digest_articles.c.article_key).where(
            digest_articles.c.campaign == settings.slug)).scalars())
        chosen = _new_items(items, sent, since, settings.max_articles)
        if not chosen:
            return Occurrence(settings.slug, due, None, 0)
        subject = occurrence_subject(settings.subject, due, current.recurrence)
        content = build(workspace, settings, articles=[i.article for i in chosen], subject=subject).require_clean().content
        target = segment_or_everyone(conn, settings.segment, workspace.segments, now=now)
        send = create_send(conn, settings.slug, segment=target.expression, subject=subject, state="sending",
                           now=now, occurrence=due.isoformat(), scheduled_at=due)
        freeze(conn, send.id, content)
        snapshot(conn, send, target, now)
        conn.execute(digest_articles.insert(), [
            {"campaign": settings.slug, "article_key": i.key, "title": i.article.title, "send_id": send.id,
             "created_at": now} for i in chosen])
        return Occurrence(settings.slug, due, send, len(chosen))


def sent_articles(conn: Connection, slug: str) -> list[str]:
    return list(conn.execute(sa.select(digest_articles.c.title).where(digest_articles.c.campaign == slug)
                             .order_by(digest_articles.c.id)).scalars())

