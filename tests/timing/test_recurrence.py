from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pipeline.errors import RecurrenceError
from pipeline.timing.recurrence import parse_recurrence

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday, 04:00 in Los Angeles


@pytest.mark.parametrize(("text", "expected"), [
    ("monthly on day 1 at 09:00", "2026-12-01 17:00"),
    ("weekly on monday at 09:00", "2026-11-23 17:00"),
    ("every friday at 7:15", "2026-11-27 15:15"),
    ("daily at 23:30", "2026-11-24 07:30"),
    ("0 9 * * 1-5", "2026-11-23 17:00"),  # cron weekdays: 1 is Monday, as in crontab(5)
    ("0 9 * * 0", "2026-11-29 17:00"),    # 0 (and 7) is Sunday
    ("30 8 1,15 * *", "2026-12-01 16:30"),
])
def test_forms(text: str, expected: str) -> None:
    assert parse_recurrence(text, LA).next_after(NOW) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize(("weekdays", "days"), [
    ("0-2", ["Sun", "Mon", "Tue"]),       # APScheduler alone counts from Monday and refuses this range
    ("sun-tue", ["Sun", "Mon", "Tue"]),
    ("5-7", ["Sun", "Fri", "Sat"]),
    ("fri-sun", ["Sun", "Fri", "Sat"]),
    ("*/2", ["Sun", "Tue", "Thu", "Sat"]),  # every other day from Sunday, as cron counts
    ("sat,1", ["Mon", "Sat"]),
])
def test_cron_weekdays_count_from_sunday(weekdays: str, days: list[str]) -> None:
    recurrence = parse_recurrence(f"0 9 * * {weekdays}", ZoneInfo("UTC"))
    moment, seen = datetime(2026, 11, 21, 12, tzinfo=UTC), set()  # a Saturday afternoon
    for _ in range(7):
        moment = recurrence.next_after(moment)
        seen.add(moment.strftime("%a"))
    order = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    assert sorted(seen, key=order.index) == days


def test_daylight_saving_days() -> None:
    daily = parse_recurrence("daily at 09:00", LA)
    assert daily.next_after(datetime(2026, 3, 7, 18, tzinfo=UTC)) == datetime(2026, 3, 8, 16, tzinfo=UTC)
    assert daily.next_after(datetime(2026, 10, 31, 17, tzinfo=UTC)) == datetime(2026, 11, 1, 17, tzinfo=UTC)


def test_latest_due_occurrence_folds_missed_ones() -> None:
    daily = parse_recurrence("daily at 09:00", LA)
    start = datetime(2026, 11, 20, 0, tzinfo=UTC)
    assert daily.latest_until(start, NOW) == datetime(2026, 11, 22, 17, tzinfo=UTC)
    assert daily.latest_until(NOW, NOW) is None


@pytest.mark.parametrize(("text", "message"), [
    ("fortnightly-ish", "is neither a cron expression nor a form like 'monthly on day 1 at 09:00'"),
    ("monthly on day 31 at 09:00", "use a day of the month from 1 to 28"),
    ("daily at 25:00", "25:00 is not a time of day"),
    ("0 9 * *", "a crontab line has 5 fields, not 4"),
    ("0 9 * * 3-1", "'3-1' runs backwards"),
    ("0 9 * * 8", "'8' is not a day of the week"),
])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(RecurrenceError, match=message):
        parse_recurrence(text, LA, where="settings.toml: recurrence")
