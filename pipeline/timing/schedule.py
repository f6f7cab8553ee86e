"""Schedules: wall times turned into UTC instants, kept in the project's own tables.

A wall time that does not exist (the hour skipped when clocks spring forward) is refused with
the nearest valid times; one that happens twice (the hour repeated in autumn) means its first
occurrence. With local time, each recipient gets the message at that wall time in their own
zone, so the send starts when the earliest zone on Earth (UTC+14) reaches it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzlocal
from sqlalchemy.engine import Connection

from pipeline.db.engine import Store
from pipeline.delivery.ledger import recipient_zones, set_due_by_zone
from pipeline.delivery.sends import (
    SendRow,
    create_send,
    delete,
    find_send,
    set_send_state,
)
from pipeline.errors import ScheduleError
from pipeline.settings.workspace import Workspace

EARLIEST = timezone(timedelta(hours=14))  # Pacific/Kiritimati: the first to reach any wall time
WALL_FORMAT = "%Y-%m-%d %H:%M"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}; use an IANA name like America/Los_Angeles") from None


def default_zone(workspace: Workspace, name: str | None = None) -> ZoneInfo:
    """The zone named, else campaign.toml's [defaults] timezone, else this machine's."""
    return zone(name or workspace.defaults.timezone or tzlocal.get_localzone_name())


def parse_wall(text: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), WALL_FORMAT)
    except ValueError:
        raise ScheduleError(f"{text!r} is not a time like \"2026-12-01 09:00\"") from None


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    """A wall time exists in a zone if it survives the trip to UTC and back."""
    back = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return back == wall


def _ambiguous(wall: datetime, tz: ZoneInfo) -> bool:
    return wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset()


def instant(wall: datetime, tz: ZoneInfo, strict: bool = True) -> tuple[datetime, str | None]:
    """The UTC instant of a wall time in a zone, and a note when it needed a choice.

    Skipped wall times are an error when strict, else moved forward by the gap (as clocks do).
    Repeated wall times take their first occurrence.
    """
    if not _exists(wall, tz):
        before = after = wall
        while not _exists(before, tz):
            before -= timedelta(minutes=1)
        while not _exists(after, tz):
            after += timedelta(minutes=1)
        if strict:
            raise ScheduleError(
                f"{wall:%Y-%m-%d %H:%M} does not exist in {tz.key} (the clocks skip that hour); "
                f"the nearest valid times are {before:%H:%M} and {after:%H:%M}")
        gap = after - before - timedelta(minutes=1)
        return (wall + gap).replace(tzinfo=tz).astimezone(UTC), None
    if _ambiguous(wall, tz):
        first = wall.replace(tzinfo=tz, fold=0)
        return first.astimezone(UTC), (
            f"{wall:%Y-%m-%d %H:%M} happens twice in {tz.key} (the clocks go back); "
            f"using the first, {first.strftime('%H:%M %Z')} ({first.astimezone(UTC):%H:%M} UTC)")
    return wall.replace(tzinfo=tz).astimezone(UTC), None


@dataclass(frozen=True)
class Scheduled:
    send: SendRow
    first_instant: datetime
    zone: str
    note: str | None


def schedule(store: Store, workspace: Workspace, slug: str, subject: str, segment: str, at: str,
             tz_name: str | None, local_time: bool, now: datetime) -> Scheduled:
    """Schedule a campaign (or move its schedule) to a wall time; refuses the past."""
    wall = parse_wall(at)
    tz = default_zone(workspace, tz_name)
    note = None
    if local_time:
        due = wall.replace(tzinfo=EARLIEST).astimezone(UTC)
        if due <= now:
            raise ScheduleError(
                f"{at} has already passed where the day starts first (UTC+14, {now.astimezone(EARLIEST):%Y-%m-%d %H:%M} "
                "there now); local-time sends must be scheduled before every reader's wall time")
    else:
        due, note = instant(wall, tz)
        if due <= now:
            raise ScheduleError(f"{at} {tz.key} is in the past (it is {now.astimezone(tz):%Y-%m-%d %H:%M} there now)")
    with store.transaction() as conn:
        send = find_send(conn, slug)
        if send is not None and (send.snapshot_at is not None or send.state not in ("draft", "scheduled", "paused")):
            raise ScheduleError(f"{slug} is {send.state}; it cannot be scheduled again")
        if send is None:
            send = create_send(conn, slug, segment=segment, subject=subject, state="scheduled", now=now,
                               scheduled_at=due)
        set_send_state(conn, send.id, "scheduled", now, scheduled_at=due, segment=segment, subject=subject,
                       local_time=f"{wall:%H:%M}" if local_time else None, timezone=tz.key)
        send = find_send(conn, slug) or send
    return Scheduled(send, due, tz.key, note)


def unschedule(store: Store, slug: str, now: datetime) -> None:
    """Forget a schedule that has not started; a send under way is paused instead (campaign pause)."""
    with store.transaction() as conn:
        send = find_send(conn, slug)
        if send is None or send.state not in ("scheduled", "paused") or send.snapshot_at is not None:
            state = send.state if send else "not scheduled"
            raise ScheduleError(f"{slug} is {state}; only a schedule that has not started can be removed"
                                + ("; 'campaign pause' stops a send under way" if send and send.snapshot_at else ""))
        delete(conn, send.id)


def wall_of(send: SendRow) -> datetime:
    """A local-time send's wall time: kept as the UTC+14 instant it starts at."""
    assert send.scheduled_at is not None
    return send.scheduled_at.astimezone(EARLIEST).replace(tzinfo=None)


def local_instants(wall: datetime, zones: Iterable[str | None], fallback: ZoneInfo) -> dict[str | None, datetime]:
    """The instant a wall time occurs in each zone (None: the campaign's zone)."""
    return {name: instant(wall, zone(name) if name else fallback, strict=False)[0] for name in zones}


def spread_local_time(conn: Connection, send: SendRow, fallback: ZoneInfo) -> None:
    """Give each delivery of a local-time send the instant its reader's zone reaches the wall time.

    One update per distinct zone, so a list of a million readers in forty zones is forty updates.
    """
    instants = local_instants(wall_of(send), recipient_zones(conn, send.id), fallback)
    set_due_by_zone(conn, send.id, instants)
