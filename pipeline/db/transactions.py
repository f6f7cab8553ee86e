"""Writing transactions: the one way every change reaches the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine


@contextmanager
def writing(engine: Engine, rollback: bool = False, foreign_keys: bool = True) -> Iterator[Connection]:
    """One writing transaction: committed if the block finishes (rolled back instead with
    `rollback`, for dry runs), rolled back on any error or Ctrl-C.

    `foreign_keys=False` suspends SQLite's foreign key actions for this transaction (schema
    upgrades only). SQLite ignores that setting inside a transaction, so it is set before.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite and not foreign_keys:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(writing=True)
            with conn.begin() as transaction:
                yield conn
                if rollback:
                    transaction.rollback()
        finally:
            if sqlite and not foreign_keys:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
