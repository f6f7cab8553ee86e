"""The tick with a controlled clock: schedules, local time, downtime, recurring feed digests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.audience.subscribers import Changes, add
from pipeline.db.engine import Store, default_url
from pipeline.db.schema import deliveries, subscribers
from pipeline.delivery.sends import find_send
from pipeline.delivery.transports import open_transport
from pipeline.settings.workspace import load_workspace
from pipeline.timing.recurring import sent_articles, start
from pipeline.timing.schedule import schedule
from pipeline.timing.tick import tick
from tests.smtp_server import SmtpTestServer
from tests.timing.test_schedule import TEN_ZONES

SUBJECT = "Can acupuncture ease persistent back pain?"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class World:
    """A workspace, its database, an SMTP server and a clock that only moves when told."""

    def __init__(self, root: Path, server: SmtpTestServer) -> None:
        self.root = root
        self.server = server
        self.store = Store(default_url(root))
        self.now = utc("2026-11-23 12:00")
        _, self.connect = open_transport(server.url, root)

    @property
    def workspace(self):  # type: ignore[no-untyped-def]
        return load_workspace(self.root)

    def people(self, zones: dict[str, str | None], tag: str = "back-pain") -> None:
        with self.store.transaction() as conn:
            for address, zone in zones.items():
                add(conn, address, Changes(first_name=address.split("@")[0], tags={tag}, timezone=zone), "test")

    def schedule(self, at: str, tz: str | None = None, local: bool = False) -> None:
        schedule(self.store, self.workspace, "back-pain", SUBJECT, "back-pain", at, tz, local, self.now)

    def tick_at(self, when: str) -> dict[str, int]:
        self.now = utc(when)
        report = tick(self.store, self.workspace, self.connect, lambda: self.now, max_seconds=30)
        assert not report.failed, [o.error for o in report.outcomes.values()]
        return {o.label: o.sent for o in report.outcomes.values() if o.sent}

    def sent_at(self) -> dict[str, datetime]:
        with self.store.reading() as conn:
            rows = conn.execute(sa.select(subscribers.c.email, deliveries.c.sent_at).select_from(
                deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)).where(
                deliveries.c.state == "sent")).all()
        return {email: moment for email, moment in rows}


@pytest.fixture
def world(workspace_dir: Path, smtp_server: SmtpTestServer) -> World:
    return World(workspace_dir, smtp_server)


def test_a_schedule_goes_out_once_when_due(world: World) -> None:
    world.people({"ana@example.com": None, "ben@example.com": "Asia/Tokyo"})
    world.schedule("2026-12-01 09:00", "America/Los_Angeles")
    assert world.tick_at("2026-12-01 16:59") == {}
    assert world.tick_at("2026-12-01 17:00") == {"back-pain": 2}
    assert world.tick_at("2026-12-01 17:01") == {}
    assert world.server.recipients() == {"ana@example.com": 1, "ben@example.com": 1}
    with world.store.reading() as conn:
        assert find_send(conn, "back-pain").state == "sent"  # type: ignore[union-attr]


def test_across_spring_forward_in_los_angeles(world: World) -> None:
    world.now = utc("2026-03-01 00:00")
    world.people({"ana@example.com": None})
    world.schedule("2026-03-08 09:00", "America/Los_Angeles")  # PDT: 16:00 UTC, not 17:00
    assert world.tick_at("2026-03-08 15:59") == {}
    assert world.tick_at("2026-03-08 16:00") == {"back-pain": 1}


def test_across_fall_back_in_london_local_time(world: World) -> None:
    world.now = utc("2026-10-20 00:00")
    world.people({"ana@example.com": "Europe/London", "ben@example.com": "America/Los_Angeles"})
    world.schedule("2026-10-25 09:00", local=True)  # London is on GMT again that morning
    assert world.tick_at("2026-10-25 08:59") == {}
    assert world.tick_at("2026-10-25 09:00") == {"back-pain": 1}
    assert world.tick_at("2026-10-25 15:59") == {}  # Los Angeles still on PDT until November
    assert world.tick_at("2026-10-25 16:00") == {"back-pain": 1}
    assert world.sent_at() == {"ana@example.com": utc("2026-10-25 09:00"), "ben@example.com": utc("2026-10-25 16:00")}


def test_local_time_fans_out_over_ten_zones(world: World) -> None:
    people = {f"{zone.split('/')[1].lower()}@example.com": zone for zone in TEN_ZONES}
    world.people({**people, "nozone@example.com": None})  # the campaign's zone: America/Los_Angeles
    world.schedule("2026-12-01 09:00", local=True)
    moments = sorted({*TEN_ZONES.values()})
    assert world.tick_at("2026-11-30 18:59") == {}
    for moment in moments:
        due_now = [a for a, z in people.items() if TEN_ZONES[z] == moment]
        before = sum(world.server.recipients().values())
        world.tick_at(moment)
        expected = len(due_now) + (1 if moment == TEN_ZONES["America/Los_Angeles"] else 0)
        assert sum(world.server.recipients().values()) - before == expected, moment
    assert world.sent_at() == {**{a: utc(TEN_ZONES[z]) for a, z in people.items()},
                               "nozone@example.com": utc("2026-12-01 17:00")}
    assert set(world.server.recipients().values()) == {1}


def test_a_local_time_send_hours_long_sends_what_it_started_with(world: World) -> None:
    world.now = utc("2026-10-20 00:00")
    world.people({"ana@example.com": "Europe/London", "ben@example.com": "America/Los_Angeles"})
    world.schedule("2026-10-25 09:00", local=True)
    assert world.tick_at("2026-10-25 09:00") == {"back-pain": 1}
    settings = world.root / "campaigns/back-pain/settings.toml"
    settings.write_text(settings.read_text().replace(SUBJECT, "Edited while London already has it"))
    assert world.tick_at("2026-10-25 16:00") == {"back-pain": 1}
    assert [m.message["Subject"] for m in world.server.received] == [SUBJECT, SUBJECT]


def test_a_scheduler_down_for_an_hour_sends_everything_once(world: World) -> None:
    world.people({f"p{n}@example.com": None for n in range(5)})
    world.schedule("2026-12-01 09:00", "America/Los_Angeles")
    assert world.tick_at("2026-12-01 18:00") == {"back-pain": 5}
    assert world.tick_at("2026-12-01 18:01") == {}
    assert set(world.server.recipients().values()) == {1}


FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Willow Creek blog</title>
  <id>https://willowcreek-acupuncture.example/blog/</id>
  <updated>2027-01-15T10:00:00Z</updated>
{entries}
</feed>
"""
ENTRY = """  <entry>
    <title>{title}</title>
    <id>https://willowcreek-acupuncture.example/blog/{slug}</id>
    <link href="https://willowcreek-acupuncture.example/blog/{slug}"/>
    <published>{published}T10:00:00Z</published>
    <updated>{published}T10:00:00Z</updated>
    <summary type="html">&lt;p&gt;{title}: what our patients ask and what helps.&lt;/p&gt;</summary>
  </entry>"""


def write_feed(path: Path, entries: list[tuple[str, str, str]]) -> None:
    path.write_text(FEED.format(entries="\n".join(ENTRY.format(title=t, slug=s, published=p)
                                                  for t, s, p in entries)), encoding="utf-8")


def test_recurring_feed_digest_over_three_occurrences(world: World) -> None:
    folder = world.root / "campaigns" / "monthly"
    folder.mkdir()
    (folder / "settings.toml").write_text(
        'subject = "Willow Creek digest: {date:%B %Y}"\ntemplate = "digest"\nsegment = "back-pain"\n'
        'recurrence = "monthly on day 1 at 09:00"\nsource = "feed.xml"\n'
        'intro = "New on our blog this month."\n', encoding="utf-8")
    old = ("Winter aches", "winter-aches", "2026-11-10")  # published before the series started
    first = [old, ("Sleep and the seasons", "sleep-seasons", "2026-11-25"), ("Ginger tea", "ginger-tea", "2026-11-28")]
    write_feed(folder / "feed.xml", first)
    world.people({"ana@example.com": None, "ben@example.com": None})
    start(world.store, world.workspace, "monthly", world.now)

    assert world.tick_at("2026-12-01 16:59") == {}
    assert world.tick_at("2026-12-01 17:00") == {"monthly (2026-12-01T17:00:00+00:00)": 2}
    december = [m.message for m in world.server.received]
    assert {m["Subject"] for m in december} == {"Willow Creek digest: December 2026"}
    html = list(december[0].iter_parts())[1].get_content()
    assert "Sleep and the seasons" in html and "Ginger tea" in html and "Winter aches" not in html

    assert world.tick_at("2027-01-01 17:00") == {}  # nothing new: skipped
    write_feed(folder / "feed.xml", [*first, ("Breathing for back pain", "breathing", "2027-01-15")])
    assert world.tick_at("2027-02-01 17:00") == {"monthly (2027-02-01T17:00:00+00:00)": 2}
    february = [m.message for m in world.server.received[2:]]
    assert {m["Subject"] for m in february} == {"Willow Creek digest: February 2027"}
    html = list(february[0].iter_parts())[1].get_content()
    assert "Breathing for back pain" in html and "Ginger tea" not in html
    with world.store.reading() as conn:
        assert sent_articles(conn, "monthly") == ["Ginger tea", "Sleep and the seasons", "Breathing for back pain"]
    assert world.tick_at("2027-02-01 18:00") == {}
    assert world.server.recipients() == {"ana@example.com": 2, "ben@example.com": 2}
