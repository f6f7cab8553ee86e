"""When a recurring campaign goes out: a cron expression, or a sentence a person would write.

    "0 9 1 * *"                          cron: minute hour day-of-month month day-of-week
    "daily at 07:30"
    "weekly on monday at 09:00"          (also "every monday at 09:00")
    "monthly on day 1 at 09:00"

Times are wall times in the campaign's zone; APScheduler's CronTrigger does the calendar work,
daylight-saving changes included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from pipeline.errors import RecurrenceError

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_AT = r"at\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})"
_FORMS = [
    (re.compile(rf"^daily\s+{_AT}$"), lambda m: {}),
    (re.compile(rf"^(?:weekly\s+on|every)\s+(?P<day>{'|'.join(_DAYS)})s?\s+{_AT}$"),
     lambda m: {"day_of_week": m.group("day")[:3]}),
    (re.compile(rf"^monthly\s+on\s+day\s+(?P<dom>\d{{1,2}})\s+{_AT}$"), lambda m: {"day": int(m.group("dom"))}),
]


@dataclass(frozen=True)
class Recurrence:
    text: str
    trigger: CronTrigger

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment`, as a UTC instant."""
        found = self.trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        assert found is not None  # cron triggers never run out
        return found.astimezone(UTC)

    def latest_until(self, start: datetime, now: datetime) -> datetime | None:
        """The last occurrence after `start` and not after `now`: the one that is due."""
        latest = None
        moment = self.next_after(start)
        while moment <= now:
            latest = moment
            moment = self.next_after(moment)
        return latest


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_DAY_ITEM = re.compile(r"^(?:(?P<all>\*)|(?P<first>\w+)(?:-(?P<last>\w+))?)(?:/(?P<step>\d+))?$")


def _cron_day(token: str) -> int:
    """A crontab weekday, a number (0 and 7 are Sunday) or a three-letter name, as 0-6 from Sunday."""
    if token.isdigit() and int(token) <= 7:
        return int(token) % 7
    if token in _CRON_DAYS:
        return _CRON_DAYS.index(token)
    raise ValueError(f"{token!r} is not a day of the week")


def _cron_weekdays(field: str) -> str:
    """crontab(5)'s day-of-week field as a list of day names for APScheduler 3, which counts
    from Monday: "1-5", "0-2" (Sunday to Tuesday), "sat,sun", "*/2" all mean what cron means."""
    if field == "*":
        return field
    days: list[int] = []
    for item in field.split(","):
        match = _CRON_DAY_ITEM.match(item)
        if match is None:
            raise ValueError(f"{item!r} is not a day-of-week item")
        if match["all"]:
            first, last = 0, 6
        else:
            first = _cron_day(match["first"])
            last = first if match["last"] is None else _cron_day(match["last"])
            if match["last"] == "7" or match["last"] == "sun" and first > 0:
                last = 7  # "5-7", "fri-sun": up to the Sunday that ends the week
            if last < first:
                raise ValueError(f"{item!r} runs backwards")
            if match["step"] and match["last"] is None:
                last = 6  # "1/2": from Monday, every other day
        step = int(match["step"] or 1)
        if step < 1:
            raise ValueError(f"{item!r} has a step of 0")
        days.extend(day % 7 for day in range(first, last + 1, step))
    return ",".join(_CRON_DAYS[day] for day in sorted(set(days)))


def _crontab(expression: str, tz: ZoneInfo) -> CronTrigger:
    """A standard five-field crontab line."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab line has 5 fields, not {len(fields)}")
    minute, hour, day, month, weekdays = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_cron_weekdays(weekdays),
                       timezone=tz)


def parse_recurrence(text: str, tz: ZoneInfo, where: str = "recurrence") -> Recurrence:
    cleaned = " ".join(text.lower().split())
    for pattern, extra in _FORMS:
        match = pattern.match(cleaned)
        if match:
            hour, minute = int(match.group("hour")), int(match.group("minute"))
            if hour > 23 or minute > 59:
                raise RecurrenceError(f"{text!r}: {hour:02d}:{minute:02d} is not a time of day", where=where)
            fields = extra(match)
            if "day" in fields and not 1 <= fields["day"] <= 28:
                raise RecurrenceError(f"{text!r}: use a day of the month from 1 to 28, which every month has",
                                      where=where)
            return Recurrence(text, CronTrigger(hour=hour, minute=minute, timezone=tz, **fields))
    try:
        return Recurrence(text, _crontab(cleaned, tz))
    except ValueError as exc:
        raise RecurrenceError(
            f"{text!r} is neither a cron expression nor a form like 'monthly on day 1 at 09:00', "
            f"'weekly on monday at 09:00' or 'daily at 07:30' ({exc})", where=where) from None
