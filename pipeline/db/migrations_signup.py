"""Schema version 9: the signup form's "pending" status, its consent records and its rate limits.

Self-contained on purpose: it names the statuses and reads the subscribers table as the database
has it, never as db.schema describes it today, so later versions may change that table freely.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.db.schema import consents, metadata, signup_limits

V9_STATUSES = ("subscribed", "unsubscribed", "bounced", "complained", "pending")
_CHECK = re.compile(r"CHECK\s*\(\s*status\s+IN\s*\([^)]*\)\s*\)", re.IGNORECASE)


def _statuses_sql() -> str:
    return f"status IN ({', '.join(repr(s) for s in V9_STATUSES)})"


def _sqlite_allow_pending(conn: Connection) -> None:
    """SQLite cannot change a CHECK constraint: the table is built anew from its own CREATE
    statement with the new list (foreign keys are off during upgrades, so nothing cascades), its
    rows copied, its indexes made again and its AUTOINCREMENT counter kept, so an erased
    subscriber's id is still never given again."""
    made = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'subscribers'").scalar()
    if made is None or "'pending'" in made:
        return  # made at this version already
    rebuilt, found = _CHECK.subn(f"CHECK ({_statuses_sql()})", made, count=1)
    head = re.match(r"\s*CREATE\s+TABLE\s+\"?subscribers\"?\s*\(", rebuilt, re.IGNORECASE)
    if not found or head is None:
        raise RuntimeError("the subscribers table does not have the shape schema version 8 gave it")
    rebuilt = "CREATE TABLE subscribers_v9 (" + rebuilt[head.end():]
    indexes = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'subscribers' "
                                   "AND sql IS NOT NULL").scalars().all()
    counter = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'subscribers'").scalar()
    names = ", ".join(f'"{row[1]}"' for row in conn.exec_driver_sql("PRAGMA table_info(subscribers)"))
    conn.exec_driver_sql(rebuilt)
    conn.exec_driver_sql(f"INSERT INTO subscribers_v9 ({names}) SELECT {names} FROM subscribers")
    conn.exec_driver_sql("DROP TABLE subscribers")
    conn.exec_driver_sql("ALTER TABLE subscribers_v9 RENAME TO subscribers")
    for index in indexes:
        conn.exec_driver_sql(index)
    if counter is not None:
        conn.exec_driver_sql("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'subscribers'", (counter,))
        conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) SELECT 'subscribers', ? WHERE NOT EXISTS "
                             "(SELECT 1 FROM sqlite_sequence WHERE name = 'subscribers')", (counter,))


def _postgresql_allow_pending(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE subscribers DROP CONSTRAINT IF EXISTS subscribers_status"))
    conn.execute(sa.text(f"ALTER TABLE subscribers ADD CONSTRAINT subscribers_status CHECK ({_statuses_sql()})"))


def v9(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        _sqlite_allow_pending(conn)
    else:
        _postgresql_allow_pending(conn)
    metadata.create_all(conn, tables=[consents, signup_limits], checkfirst=True)
