"""Writing transactions: the one way every change reaches the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine


@contextmanager
def writing(engine: Engine, rollback: bool = False, foreign_keys: bool = True,
            lock_wait: float | None = None) -> Iterator[Connection]:
    """One writing transaction: committed if the block finishes (rolled back instead with
    `rollback`, for dry runs), rolled back on any error or Ctrl-C.

    `foreign_keys=False` suspends SQLite's foreign key checks and actions for this transaction:
    for schema upgrades, and for imports, whose rows refer only to subscribers the same
    transaction made or read while it held the write lock. SQLite ignores that setting inside a
    transaction, so it is set before.
    `lock_wait` (seconds) shortens how long SQLite waits for its write lock, for work that would
    rather keep its changes in memory and try again than wait out an import.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        driver = conn.connection.driver_connection if sqlite else None
        if driver is not None and not foreign_keys:
            driver.execute("PRAGMA foreign_keys=OFF")
        waited = None
        if driver is not None and lock_wait is not None:
            waited = driver.execute("PRAGMA busy_timeout").fetchone()[0]
            driver.execute(f"PRAGMA busy_timeout={max(int(lock_wait * 1000), 1)}")
        try:
            conn.execution_options(writing=True)
            with conn.begin() as transaction:
                yield conn
                if rollback:
                    transaction.rollback()
        finally:
            # A Ctrl-C inside a statement makes SQLAlchemy close the connection: nothing to restore.
            if driver is not None and not conn.invalidated:
                if not foreign_keys:
                    driver.execute("PRAGMA foreign_keys=ON")
                if waited is not None:
                    driver.execute(f"PRAGMA busy_timeout={int(waited)}")
