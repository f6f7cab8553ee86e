"""Recorded events: idempotent, their scanners marked, readers selected by them, and the report, on both databases."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.delivery.sends import find_send
from pipeline.engagement.events import CLICK, OPEN, Event, record
from pipeline.engagement.intake import Intake
from tests.conftest import Campaign
from tests.engagement.report_page import assert_offline, charts, parse
from tests.tracked import BOOK, readers, recorded, track

HOME = "https://willowcreek-acupuncture.example?utm_source=newsletter&utm_medium=email&utm_campaign=back-pain"


@pytest.fixture
def sent(audience: Campaign, db_url: str) -> Store:
    """A tracked send of back-pain to reader0..reader5; the store of its database."""
    track(audience.root)
    store = Store(db_url)
    readers(store, 6)
    assert audience("send", "back-pain", "--yes").exit_code == 0
    return store


def _ids(store: Store) -> tuple[int, list[int]]:
    with store.reading() as conn:
        send = find_send(conn, "back-pain")
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM subscribers ORDER BY id")]
    assert send is not None
    return send.id, ids


def _event(send: int, reader: int, kind: str = OPEN, link: int = 0, seconds: float = 60, machine: bool = False,
           url: str | None = None, base: datetime | None = None) -> Event:
    """An event `seconds` after `base` (now, to the second, by default: give one base to events
    whose distance apart matters, or a second boundary between two calls moves them apart)."""
    at = (base or utcnow().replace(microsecond=0)) + timedelta(seconds=seconds)
    return Event(kind, send, reader, link, at, int(seconds), "scanner" if machine else "browser", machine, url)


def test_the_same_event_twice_is_one_row_and_a_batch_written_again_changes_nothing(sent: Store) -> None:
    send, ids = _ids(sent)
    batch = [_event(send, ids[0]), _event(send, ids[0]), _event(send, ids[1], CLICK, 3, url=BOOK)]
    intake = Intake(sent)
    for event in batch * 2:
        intake.add(event)
    assert intake.flush() == 6  # admitted; stored once each
    with sent.transaction() as conn:
        record(conn, batch)
    assert len(recorded(sent)) == 2


def test_clicks_on_two_links_of_one_message_within_two_seconds_are_a_scanners(sent: Store) -> None:
    send, ids = _ids(sent)
    base = utcnow().replace(microsecond=0)
    with sent.transaction() as conn:
        record(conn, [_event(send, ids[0], CLICK, 1, 10, url=HOME, base=base)])
    with sent.transaction() as conn:  # later, in another batch
        record(conn, [_event(send, ids[0], CLICK, 3, 11.5, url=BOOK, base=base),
                      _event(send, ids[1], CLICK, 1, 10, url=HOME, base=base),
                      _event(send, ids[1], CLICK, 3, 40, url=BOOK, base=base)])
    marked = {(e.subscriber_id, e.link): (e.agent, e.machine) for e in recorded(sent)}
    assert marked == {(ids[0], 1): ("scanner", True), (ids[0], 3): ("scanner", True),
                      (ids[1], 1): ("browser", False), (ids[1], 3): ("browser", False)}


def test_segments_select_readers_by_what_they_did(sent: Store, audience: Campaign) -> None:
    send, ids = _ids(sent)
    with sent.transaction() as conn:
        record(conn, [_event(send, ids[0]), _event(send, ids[1], machine=True),
                      _event(send, ids[2], CLICK, 3, url=BOOK), _event(send, ids[3], CLICK, 1, machine=True, url=HOME),
                      _event(send, ids[4], CLICK, 1, url=HOME)])

    def count(expression: str) -> int:
        result = audience("segments", "count", expression)
        assert result.exit_code == 0, result.stderr
        return int(result.stdout)

    assert count('opened("back-pain")') == 1
    assert count('opened("back-pain", machine=True)') == 2
    assert count('clicked("back-pain")') == 2
    assert count('clicked("back-pain", machine=True)') == 3
    assert count('clicked("back-pain", "https://willowcreek-acupuncture.example/book")') == 1
    assert count(f'clicked("back-pain", "{BOOK}")') == 1
    assert count('clicked("back-pain", "https://willowcreek-acupuncture.example/nowhere")') == 0
    assert count('"back-pain" in tags and not opened("back-pain") and not clicked("back-pain")') == 3
    assert count('opened("another-campaign")') == 0
    wrong = audience("segments", "count", 'clicked("back-pain", 3)')
    assert wrong.exit_code == 1
    assert wrong.stderr == ('campaign: error: segment expression, column 22: clicked() takes a link as its second '
                            'argument, such as "https://clinic.example/book"\n')


def test_the_report_counts_readers_machines_links_hours_and_rates(sent: Store, audience: Campaign,
                                                                  tmp_path: Path) -> None:
    send, ids = _ids(sent)
    with sent.transaction() as conn:
        record(conn, [_event(send, ids[0], seconds=30), _event(send, ids[0], seconds=4000),
                      _event(send, ids[1], seconds=7300), _event(send, ids[2], machine=True),
                      _event(send, ids[0], CLICK, 3, 31, url=BOOK), _event(send, ids[1], CLICK, 3, 7301, url=BOOK),
                      _event(send, ids[1], CLICK, 3, 9000, url=BOOK), _event(send, ids[3], CLICK, 1, machine=True,
                                                                              url=HOME)])
    result = audience("report", "back-pain", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    figures = {k: data[k] for k in ("sent", "delivered", "opens", "unique_opens", "machine_opens", "clicks",
                                    "unique_clicks", "machine_clicks", "unsubscribes", "bounces", "complaints")}
    assert figures == {"sent": 6, "delivered": 6, "opens": 3, "unique_opens": 2, "machine_opens": 1, "clicks": 3,
                       "unique_clicks": 2, "machine_clicks": 1, "unsubscribes": 0, "bounces": 0, "complaints": 0}
    assert (data["open_rate"], data["click_rate"]) == (0.3333, 0.3333)
    assert data["links"][0] == {"url": BOOK, "clicks": 3, "unique_clicks": 2}
    assert {link["url"] for link in data["links"]} == {BOOK, HOME, HOME.replace(
        "example?", "example/blog/acupuncture-back-pain?")}
    assert data["hours"]["opens"][:3] == [1, 1, 1] and sum(data["hours"]["opens"]) == 3
    assert data["hours"]["clicks"][0] == 1 and data["hours"]["clicks"][2] == 2
    assert data["segments"][0] == {"segment": "back-pain", "sent": 6, "unique_opens": 2, "unique_clicks": 2,
                                   "open_rate": 0.3333, "click_rate": 0.3333}
    assert data["ab"] is None

    table = audience("report", "back-pain").stdout
    assert re.search(r"^opens\s+3, unique 2 \(33\.3%\), machine 1$", table, re.MULTILINE)
    assert f"      3        2  {BOOK}" in table

    page = tmp_path / "report.html"
    assert audience("report", "back-pain", "--html", str(page)).exit_code == 0
    shown = parse(page.read_text(encoding="utf-8"))
    assert_offline(shown)
    found = {chart.label: chart.series for chart in charts(shown)}
    assert list(found) == ["Opens and clicks per hour after sending", "Clicks on the ten most clicked links",
                           "Rates by segment", "Rates by time zone"]
    hours = found["Opens and clicks per hour after sending"]
    assert hours["opens"] == {f"{h} h": "1" if h < 3 else "0" for h in range(72)}
    assert hours["clicks"] == {f"{h} h": {0: "1", 2: "2"}.get(h, "0") for h in range(72)}
    assert found["Clicks on the ten most clicked links"] == {"clicks": {
        "willowcreek-acupuncture.example/book": "3", "willowcreek-acupuncture.example": "0",
        "willowcreek-acupuncture.example/blog/acupunct…": "0"}}  # cut at 48
    assert found["Rates by segment"] == {"opened": {"back-pain": "33.3%", "new-patients": "33.3%"},
                                         "clicked": {"back-pain": "33.3%", "new-patients": "33.3%"}}
    assert found["Rates by time zone"] == {"opened": {"unknown": "33.3%"}, "clicked": {"unknown": "33.3%"}}

    lines = audience("report").stdout.splitlines()
    assert lines == ["back-pain\tsent 6\topened 33.3%\tclicked 33.3%\tunsubscribed 0.0%\tbounced 0"]


def test_report_of_a_campaign_never_sent_is_a_clean_error(audience: Campaign) -> None:
    result = audience("report", "back-pain")
    assert (result.exit_code, result.stderr) == (1, "campaign: error: campaign 'back-pain' has not been sent yet\n")


def test_hits_wait_in_memory_while_sqlite_is_locked_and_are_written_after(sent: Store, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's database-wide write lock")
    import sqlite3

    send, ids = _ids(sent)
    intake = Intake(sent)
    for n in range(10):
        intake.add(_event(send, ids[n % 6], CLICK, 1 + n % 3, seconds=100 * n, url=HOME))
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a long import holds it
    try:
        assert intake.flush() == 0 and len(intake.waiting) == 10
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert intake.flush() == 10 and len(recorded(sent)) == 10 and not intake.waiting
