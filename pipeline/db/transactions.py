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

    `foreign_keys=False` suspends SQLite's foreign key actions for this transaction (schema
    upgrades only). SQLite ignores that setting inside a transaction, so it is set before.
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
            if driver is not None and not foreign_keys:
                driver.execute("PRAGMA foreign_keys=ON")
            if driver is not None and waited is not None:
                driver.execute(f"PRAGMA busy_timeout={int(waited)}")
