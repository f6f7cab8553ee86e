"""The idle check: "surely nothing due" only when a full tick would indeed do nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from pipeline.db import migrations
from pipeline.db.engine import Store, default_url
from pipeline.db.schema import deliveries
from pipeline.timing import idle
from pipeline.timing.idle import nothing_due
from tests.cli.test_sending import people
from tests.conftest import Campaign

NOW = "2026-11-23T12:00:00Z"
BEFORE, DUE = datetime(2026, 12, 1, 16, 59, tzinfo=UTC), datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def test_the_check_is_written_for_the_current_schema() -> None:
    assert idle.SCHEMA == migrations.SCHEMA_VERSION


def test_nothing_scheduled_is_idle_even_before_the_database_exists(campaign: Campaign) -> None:
    assert nothing_due(campaign.root, None, DUE)
    assert not (campaign.root / "campaign.db").exists()
    assert not nothing_due(campaign.root / "missing", None, DUE)  # the full path explains what is wrong
    assert not nothing_due(campaign.root, "postgresql+psycopg://x@localhost/db", DUE)


def test_a_schedule_is_due_at_its_instant(campaign: Campaign) -> None:
    people(campaign, 2)
    assert campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW).exit_code == 0
    assert nothing_due(campaign.root, None, BEFORE)
    assert not nothing_due(campaign.root, None, DUE)


def test_a_send_under_way_is_due_while_rows_are_due_or_on_the_wire(campaign: Campaign) -> None:
    people(campaign, 3)
    assert campaign("send", "back-pain", "--yes", "--limit", "1").exit_code == 0
    now = datetime.now(UTC)
    assert not nothing_due(campaign.root, None, now)  # two rows still queued and due
    store = Store(default_url(campaign.root))
    with store.transaction() as conn:
        conn.execute(deliveries.update().where(deliveries.c.state == "queued").values(
            due_at=datetime(2030, 1, 1, tzinfo=UTC)))
    assert nothing_due(campaign.root, None, now)  # retries fall due later
    with store.transaction() as conn:
        conn.execute(deliveries.update().where(deliveries.c.state == "sent").values(  # as a killed sender leaves it
            state="sending", lease_until=now, worker="elsewhere:1:x"))
    assert not nothing_due(campaign.root, None, now)  # a sender's leftovers need recovering
    with store.transaction() as conn:
        conn.execute(deliveries.update().values(state="sent", lease_until=None))
    store.close()
    assert not nothing_due(campaign.root, None, now)  # nothing left: the send wants marking sent


def test_a_recurring_campaign_is_idle_until_its_next_occurrence_or_an_edit(campaign: Campaign) -> None:
    folder = campaign.root / "campaigns" / "monthly"
    folder.mkdir()
    feed = folder / "posts"
    feed.mkdir()
    (folder / "settings.toml").write_text('subject = "News"\nrecurrence = "monthly on day 1 at 09:00"\n'
                                          'source = "posts"\nsegment = "back-pain"\n')
    assert campaign("schedule", "monthly", "--now", NOW).exit_code == 0  # next: 2026-12-01 17:00 UTC
    assert nothing_due(campaign.root, None, BEFORE)
    assert not nothing_due(campaign.root, None, DUE)
    (folder / "settings.toml").write_text((folder / "settings.toml").read_text().replace("day 1", "day 2"))
    assert not nothing_due(campaign.root, None, BEFORE)  # edited since: look properly
    assert campaign("send-due", "--now", BEFORE.isoformat()).exit_code == 0  # the full tick notes the change
    assert nothing_due(campaign.root, None, BEFORE)


def test_a_tick_with_nothing_due_loads_none_of_the_heavy_libraries(campaign: Campaign) -> None:
    people(campaign, 2)
    assert campaign("send", "back-pain", "--yes").exit_code == 0  # a database with a finished send in it
    probe = ("import json, sys\n"
             "from pipeline.cli import cli\n"
             f"try:\n    cli(['--workspace', {str(campaign.root)!r}, 'send-due', '--quiet'], prog_name='campaign')\n"
             "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
             "heavy = ('sqlalchemy', 'trafilatura', 'lxml', 'mjml', 'dkim', 'apscheduler', 'jinja2', 'markdown_it')\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules if m.startswith(heavy)})))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_send_due_with_nothing_due_prints_nothing_and_changes_nothing(campaign: Campaign) -> None:
    people(campaign, 1)
    assert campaign("schedule", "back-pain", "--at", "2026-12-01 09:00", "--now", NOW).exit_code == 0
    db = Path(campaign.root / "campaign.db")
    before = db.stat().st_mtime_ns
    quiet = campaign("send-due", "--now", BEFORE.isoformat())
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert db.stat().st_mtime_ns == before
    with Store(default_url(campaign.root)).reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 0
