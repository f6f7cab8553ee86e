"""How often the signup form may be used: counters in the database (the signup_limits table), so
every `campaign serve` process, and every uvicorn worker, counts together.

A counter is kept per scope ("ip": signup requests from one client address an hour; "address":
confirmation emails to one e-mail address a day) and fixed window, under a keyed hash of the
address: the table holds neither IPs nor e-mail addresses. Counting is one upsert, atomic on
SQLite and PostgreSQL alike, so two processes never both take the last allowed slot.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pipeline.db.schema import signup_limits

IP = "ip"
ADDRESS = "address"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
KEEP = timedelta(days=2)  # windows older than this are deleted as new ones start
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(now: datetime, length: timedelta) -> datetime:
    """The start of the fixed window of `length` that holds `now`."""
    return _EPOCH + (now - _EPOCH) // length * length


class Keys:
    """Keyed hashes of what is counted, made with the workspace's secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(f"signup-limits:{secret}".encode()).digest()

    def __call__(self, scope: str, value: str) -> str:
        return hmac.new(self._key, f"{scope}:{value.strip().lower()}".encode(), hashlib.sha256).hexdigest()[:32]


def hit(conn: Connection, scope: str, key: str, length: timedelta, now: datetime) -> int:
    """Count one more in the current window; returns the count, this one included."""
    start = window_start(now, length)
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(signup_limits)
    statement = insert.values(scope=scope, key=key, window_start=start, hits=1).on_conflict_do_update(
        index_elements=[signup_limits.c.scope, signup_limits.c.key, signup_limits.c.window_start],
        set_={"hits": signup_limits.c.hits + 1}).returning(signup_limits.c.hits)
    count = int(conn.execute(statement).scalar_one())
    if count == 1:  # a new window: a good moment to drop the old ones
        conn.execute(signup_limits.delete().where(signup_limits.c.window_start < now - KEEP))
    return count


def count(conn: Connection, scope: str, key: str, length: timedelta, now: datetime) -> int:
    """The current window's count, without adding to it."""
    found = conn.execute(sa.select(signup_limits.c.hits).where(
        signup_limits.c.scope == scope, signup_limits.c.key == key,
        signup_limits.c.window_start == window_start(now, length))).scalar()
    return int(found or 0)


def retry_after(now: datetime, length: timedelta) -> int:
    """Seconds until the current window ends."""
    return max(1, int((window_start(now, length) + length - now).total_seconds()) + 1)
