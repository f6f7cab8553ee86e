"""Subject tests end to end, through a real SMTP server: the test group first, the winner to the rest, each reader once."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.db.schema import deliveries, sends, subscribers
from pipeline.engagement.events import CLICK, Event, record
from pipeline.errors import ConfigError
from pipeline.settings.campaign import load_campaign
from pipeline.settings.workspace import load_workspace
from tests.conftest import Campaign, edit
from tests.smtp_server import SmtpTestServer
from tests.tracked import BOOK, readers, track

AB = '\n[ab]\nsubjects = ["Back pain: what helps?", "Can acupuncture ease your back?"]\ntest_share = 0.4\n' \
     'wait = "4h"\nmetric = "clicks"\n'


def settings(root: Path) -> Path:
    return root / "campaigns" / "back-pain" / "settings.toml"


def subjects_by_reader(store: Store) -> dict[str, list[tuple[str, str]]]:
    """Each address: the (occurrence, subject) of every delivery it had."""
    with store.reading() as conn:
        rows = conn.execute(sa.select(subscribers.c.email, sends.c.occurrence, sends.c.subject).select_from(
            deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .join(sends, sends.c.id == deliveries.c.send_id)).where(deliveries.c.state == "sent"))
        found: dict[str, list[tuple[str, str]]] = {}
        for address, occurrence, subject in rows:
            found.setdefault(address, []).append((occurrence, subject))
    return found


def clicks_for(store: Store, occurrence: str, share: float) -> None:
    """Readers of one variant click the booking link (as tracking would record them)."""
    with store.reading() as conn:
        rows = conn.execute(sa.select(deliveries.c.send_id, deliveries.c.subscriber_id).join(
            sends, sends.c.id == deliveries.c.send_id).where(sends.c.occurrence == occurrence)).all()
    chosen = rows[:max(1, int(len(rows) * share))]
    with store.transaction() as conn:
        record(conn, [Event(CLICK, s, r, 3, utcnow(), 600, "browser", False, BOOK) for s, r in chosen])


def test_the_test_group_gets_one_subject_each_and_the_winner_goes_to_everyone_else_once(
        audience: Campaign, db_url: str, smtp_server: SmtpTestServer) -> None:
    track(audience.root)
    settings(audience.root).write_text(settings(audience.root).read_text() + AB)
    store = Store(db_url)
    everyone = set(readers(store, 100))
    dry = audience("--transport", smtp_server.url, "send", "back-pain", "--dry-run")
    tested = int(dry.stdout)
    assert 25 <= tested <= 55  # 40 % of 100, by a hash of each reader's id
    assert "Back pain: what helps? | Can acupuncture ease your back?" in dry.stderr

    started = audience("--transport", smtp_server.url, "send", "back-pain", "--yes")
    assert started.exit_code == 0, started.stderr
    first = subjects_by_reader(store)
    assert len(first) == tested and all(len(v) == 1 for v in first.values())
    a = {r for r, [(o, _)] in first.items() if o == "test-A"}
    b = {r for r, [(o, _)] in first.items() if o == "test-B"}
    assert a and b and not a & b and abs(len(a) - len(b)) <= max(6, tested // 4)
    assert {s for v in first.values() for _, s in v} == {"Back pain: what helps?", "Can acupuncture ease your back?"}
    assert smtp_server.recipients() == {r: 1 for r in first}

    again = audience("--transport", smtp_server.url, "send", "back-pain", "--yes")
    assert again.exit_code == 1 and "back-pain is testing its subjects" in again.stderr

    clicks_for(store, "test-A", 0.1)
    clicks_for(store, "test-B", 0.5)
    due = (utcnow() + timedelta(hours=4, minutes=1)).isoformat()
    early = audience("--transport", smtp_server.url, "send-due", "--now", (utcnow() + timedelta(hours=1)).isoformat())
    assert early.exit_code == 0 and len(subjects_by_reader(store)) == tested  # the wait is not over
    ticked = audience("--transport", smtp_server.url, "send-due", "--now", due)
    assert ticked.exit_code == 0, ticked.stderr

    final = subjects_by_reader(store)
    assert set(final) == everyone and all(len(v) == 1 for v in final.values())
    assert smtp_server.recipients() == {r: 1 for r in everyone}
    assert {final[r][0] for r in everyone - a - b} == {("", "Can acupuncture ease your back?")}

    report = json.loads(audience("report", "back-pain", "--json").stdout)
    assert report["sent"] == 100
    assert report["ab"]["winner"]["variant"] == "B" and report["ab"]["metric"] == "clicks"
    assert [v["variant"] for v in report["ab"]["variants"]] == ["A", "B"]
    assert report["ab"]["variants"][1]["unique_clicks"] == max(1, int(len(b) * 0.5))
    table = audience("report", "back-pain").stdout
    assert "Can acupuncture ease your back?  (winner)" in table
    status = audience("status", "back-pain")
    assert status.exit_code == 0 and "back-pain (test-A)" in status.stdout and "back-pain (test-B)" in status.stdout
    history = [e["event"] for e in json.loads(audience("status", "back-pain", "--json").stdout)[0]["history"]]
    assert history[:2] == ["ab-test", "started"] and "ab-winner" in history


def test_a_scheduled_test_starts_at_its_time_and_picks_its_winner_after_the_wait(
        audience: Campaign, db_url: str, smtp_server: SmtpTestServer) -> None:
    track(audience.root)
    settings(audience.root).write_text(settings(audience.root).read_text() + AB.replace("clicks\"", "opens\""))
    store = Store(db_url)
    readers(store, 40)
    at = utcnow() + timedelta(days=1)
    assert audience("schedule", "back-pain", "--at", at.strftime("%Y-%m-%d %H:%M"), "--tz", "UTC").exit_code == 0
    assert audience("--transport", smtp_server.url, "send-due", "--now", (at + timedelta(minutes=1)).isoformat()
                    ).exit_code == 0
    first = subjects_by_reader(store)
    assert 0 < len(first) < 40 and {o for v in first.values() for o, _ in v} <= {"test-A", "test-B"}
    assert audience("--transport", smtp_server.url, "send-due", "--now", (at + timedelta(hours=5)).isoformat()
                    ).exit_code == 0
    final = subjects_by_reader(store)
    assert len(final) == 40 and all(len(v) == 1 for v in final.values())
    # No opens were recorded: a tie, which goes to the first subject.
    assert {v[0][1] for r, v in final.items() if r not in first} == {"Back pain: what helps?"}


def test_ab_settings_are_checked(workspace_dir: Path) -> None:
    path = settings(workspace_dir)
    path.write_text(path.read_text() + AB)
    with pytest.raises(ConfigError, match=r"\[ab\] metric: picking the winner by clicks needs \[tracking\] clicks"):
        load_campaign(load_workspace(workspace_dir), "back-pain")
    track(workspace_dir)
    test = load_campaign(load_workspace(workspace_dir), "back-pain").ab
    assert test is not None and (test.test_share, test.wait, test.metric) == (0.4, timedelta(hours=4), "clicks")
    for old, new, message in (("test_share = 0.4", "test_share = 1.5", "is not a share between 0 and 1"),
                              ('wait = "4h"', 'wait = "soon"', "is not a wait like"),
                              ('metric = "clicks"', 'metric = "likes"', "'likes' is not one of clicks, opens"),
                              ('subjects = ["Back pain: what helps?", ', 'subjects = [', "needs 2 to 26 different")):
        edit(path, old, new)
        with pytest.raises(ConfigError, match=message):
            load_campaign(load_workspace(workspace_dir), "back-pain")
        edit(path, new, old)
