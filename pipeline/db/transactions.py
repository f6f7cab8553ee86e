"""Writing transactions: the one way every change reaches the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine


@contextmanager
def writing(engine: Engine, rollback: bool = False) -> Iterator[Connection]:
    """One writing transaction: committed if the block finishes (rolled back instead with
    `rollback`, for dry runs), rolled back on any error or Ctrl-C."""
    with engine.connect() as conn:
        conn.execution_options(writing=True)
        with conn.begin() as transaction:
            yield conn
            if rollback:
                transaction.rollback()
