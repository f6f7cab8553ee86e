"""Wall times to instants across daylight-saving changes, and local-time fan-out."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pipeline.errors import ScheduleError
from pipeline.timing.schedule import instant, local_instants, parse_wall

LA, LONDON = ZoneInfo("America/Los_Angeles"), ZoneInfo("Europe/London")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("wall", "tz", "expected"), [
    ("2026-03-07 09:00", LA, "2026-03-07 17:00"),   # PST, the day before spring forward
    ("2026-03-08 09:00", LA, "2026-03-08 16:00"),   # PDT from that morning
    ("2026-10-31 09:00", LA, "2026-10-31 16:00"),
    ("2026-11-01 09:00", LA, "2026-11-01 17:00"),   # back to PST
    ("2026-03-28 09:00", LONDON, "2026-03-28 09:00"),  # GMT
    ("2026-03-29 09:00", LONDON, "2026-03-29 08:00"),  # BST
    ("2026-10-25 09:00", LONDON, "2026-10-25 09:00"),  # GMT again
])
def test_wall_times_across_transitions(wall: str, tz: ZoneInfo, expected: str) -> None:
    assert instant(parse_wall(wall), tz) == (utc(expected), None)


@pytest.mark.parametrize(("wall", "tz", "message"), [
    ("2026-03-08 02:30", LA, "2026-03-08 02:30 does not exist in America/Los_Angeles (the clocks skip that hour); "
                             "the nearest valid times are 01:59 and 03:00"),
    ("2026-03-29 01:15", LONDON, "2026-03-29 01:15 does not exist in Europe/London (the clocks skip that hour); "
                                 "the nearest valid times are 00:59 and 02:00"),
])
def test_skipped_wall_times_are_refused_with_the_nearest_valid_ones(wall: str, tz: ZoneInfo, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        instant(parse_wall(wall), tz)
    assert str(caught.value) == message


@pytest.mark.parametrize(("wall", "tz", "expected", "note"), [
    ("2026-11-01 01:30", LA, "2026-11-01 08:30",
     "2026-11-01 01:30 happens twice in America/Los_Angeles (the clocks go back); using the first, 01:30 PDT "
     "(08:30 UTC)"),
    ("2026-10-25 01:30", LONDON, "2026-10-25 00:30",
     "2026-10-25 01:30 happens twice in Europe/London (the clocks go back); using the first, 01:30 BST (00:30 UTC)"),
])
def test_repeated_wall_times_take_the_first(wall: str, tz: ZoneInfo, expected: str, note: str) -> None:
    assert instant(parse_wall(wall), tz) == (utc(expected), note)


def test_a_skipped_wall_time_in_a_readers_zone_moves_forward_with_the_clocks() -> None:
    assert instant(parse_wall("2026-03-08 02:30"), LA, strict=False) == (utc("2026-03-08 10:30"), None)


TEN_ZONES = {
    "Pacific/Kiritimati": "2026-11-30 19:00",  # UTC+14
    "Pacific/Chatham": "2026-11-30 19:15",     # UTC+13:45 in summer
    "Asia/Kathmandu": "2026-12-01 03:15",      # UTC+5:45
    "Asia/Kolkata": "2026-12-01 03:30",        # UTC+5:30
    "Europe/London": "2026-12-01 09:00",
    "America/St_Johns": "2026-12-01 12:30",    # UTC-3:30
    "America/New_York": "2026-12-01 14:00",
    "America/Los_Angeles": "2026-12-01 17:00",
    "Pacific/Marquesas": "2026-12-01 18:30",   # UTC-9:30
    "Pacific/Pago_Pago": "2026-12-01 20:00",   # UTC-11
}


def test_local_time_over_ten_zones_including_quarter_and_half_hours() -> None:
    due = local_instants(parse_wall("2026-12-01 09:00"), [*TEN_ZONES, None], ZoneInfo("Europe/Paris"))
    assert due == {**{z: utc(t) for z, t in TEN_ZONES.items()}, None: utc("2026-12-01 08:00")}


def test_bad_input() -> None:
    with pytest.raises(ScheduleError, match=r"^'tomorrow 9am' is not a time like \"2026-12-01 09:00\"$"):
        parse_wall("tomorrow 9am")
