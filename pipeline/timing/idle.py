"""Is anything due? Answered with the standard library's sqlite3 alone.

Cron runs `campaign send-due` every minute, and almost every minute nothing is due. Loading the
whole pipeline (SQLAlchemy, the templates, the readers) to find that out costs most of a second
of CPU each time; these few indexed queries cost milliseconds. The answer is only ever "surely
nothing" or "look properly": anything unusual (another database, an older schema, a crash left
behind, a recurring campaign whose settings changed) sends the tick down its full path.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from pipeline.clock import sql_time

SCHEMA = 11  # the schema these queries are written for; a test keeps it equal to db.migrations'
CONFIG = "campaign.toml"
DATABASE = "campaign.db"


def _database(workspace: Path, db_url: str | None) -> Path | None:
    if db_url is None:
        return workspace / DATABASE
    if db_url.startswith("sqlite:///") and "?" not in db_url:
        return Path(db_url[len("sqlite:///"):])
    return None  # PostgreSQL, or options this check does not read


def settings_stamp(path: Path) -> str:
    """What tells one version of a settings file from the next: its modification time and size."""
    found = path.stat()
    return f"{found.st_mtime_ns}:{found.st_size}"


def nothing_due(workspace: Path, db_url: str | None, now: datetime) -> bool:
    """True only when a tick at `now` would certainly do nothing at all."""
    path = _database(workspace, db_url)
    if path is None or not (workspace / CONFIG).is_file():
        return False  # the full path reads the configuration and says what is wrong with it
    if not path.exists():
        return True  # no database yet: nothing was ever scheduled
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        return _idle(conn, workspace, sql_time(now))
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _idle(conn: sqlite3.Connection, workspace: Path, now: str) -> bool:
    (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    if version != SCHEMA:
        return False
    if conn.execute("SELECT 1 FROM sends WHERE state = 'scheduled' AND scheduled_at <= ? LIMIT 1", (now,)).fetchone():
        return False
    for (send_id,) in conn.execute("SELECT id FROM sends WHERE state = 'sending'").fetchall():
        queued = conn.execute("SELECT min(due_at) FROM deliveries WHERE send_id = ? AND state = 'queued'",
                              (send_id,)).fetchone()[0]
        if queued is None or queued <= now:
            return False  # due now, or nothing left and the send wants finishing
        if conn.execute("SELECT 1 FROM deliveries WHERE send_id = ? AND lease_until IS NOT NULL AND state = 'sending' "
                        "LIMIT 1",
                        (send_id,)).fetchone():
            return False  # a sender is at work, or died at work: its rows need looking after
    for campaign, next_at, stamp in conn.execute(
            "SELECT campaign, next_at, settings_stamp FROM recurrences").fetchall():
        try:
            current = settings_stamp(workspace / "campaigns" / campaign / "settings.toml")
        except OSError:
            return False
        if next_at is None or next_at <= now or stamp != current:
            return False  # due, or worked out from settings.toml as it was before an edit
    return True
