"""Opening the database: an engine with the settings each backend needs, upgraded on first use,
and the transactions every command runs its changes in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from pipeline.db.migrations import is_current, upgrade
from pipeline.db.transactions import writing
from pipeline.errors import StoreError
from pipeline.redact import redact_url

DB_NAME = "campaign.db"
CACHE_PAGES = -65536  # SQLite page cache per connection, in KiB when negative: 64 MB


def default_url(workspace_root: Path) -> str:
    return f"sqlite:///{workspace_root / DB_NAME}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside a sender; foreign keys are off by default in SQLite.
    dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself (see _begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A larger page cache keeps a million-row list's indexes in memory during imports and counts.
    cursor.execute(f"PRAGMA cache_size={CACHE_PAGES}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writing transaction takes the write lock up front (IMMEDIATE), so two writers queue on
    # the busy timeout instead of one failing midway; readers stay deferred and never block.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writing") else "BEGIN")


def create_engine(url: str) -> Engine:
    try:
        backend = sa.engine.make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://...")
        engine = sa.create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:  # ValueError: a bad port
        raise StoreError(redact_url(f"cannot use database URL {url!r}: {exc}")) from None
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


class Store:
    """An engine on an upgraded database."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        try:
            # Upgrading takes the write lock: only when needed, or every command would queue
            # behind a long import. upgrade() looks again under the lock.
            with self.engine.connect() as conn:
                current = is_current(conn)
            if not current:
                upgrade(self.engine)
        except OperationalError as exc:
            reason = " ".join(str(exc.orig).split())  # psycopg's reasons run over several lines
            raise StoreError(redact_url(f"cannot open database {url}: {reason}")) from None

    def transaction(self, rollback: bool = False, lock_wait: float | None = None,
                    foreign_keys: bool = True) -> AbstractContextManager[Connection]:
        return writing(self.engine, rollback, foreign_keys, lock_wait)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
