"""Hand-written statements straight to the database driver, for the few hot paths where
SQLAlchemy's per-statement work costs more than the statement: sending."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from pipeline.clock import sql_time


def _driver_params(postgres: bool, params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple((p.astimezone(UTC).replace(tzinfo=None) if postgres else sql_time(p))
                 if isinstance(p, datetime) else p for p in params)


def run_sql(conn: Connection, sql: str, *params: Any) -> Any:
    """A hand-written statement straight to the driver. Write "?" for parameters; datetimes
    are sent as the column types would send them."""
    postgres = conn.dialect.name == "postgresql"
    return conn.exec_driver_sql(sql.replace("?", "%s") if postgres else sql, _driver_params(postgres, params))


class RawTransactions:
    """Short transactions on the driver connection beneath an idle SQLAlchemy Connection.

    Every message sent costs one transaction; through SQLAlchemy its begin, events and commit
    cost more than the statements. The owner must not use the SQLAlchemy Connection while one
    of these runs.
    """

    def __init__(self, conn: Connection) -> None:
        self.postgres = conn.dialect.name == "postgresql"
        self.driver = conn.connection.driver_connection

    def run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        cursor = self.driver.cursor()
        try:
            if not self.postgres:
                cursor.execute("BEGIN IMMEDIATE")
            counts = []
            times: dict[datetime, Any] = {}  # the same instant appears in several statements
            for sql, params in statements:
                values = tuple(self._time(times, p) if isinstance(p, datetime) else p for p in params)
                cursor.execute(sql.replace("?", "%s") if self.postgres else sql, values)
                counts.append(cursor.rowcount)
            if self.postgres:
                self.driver.commit()
            else:
                cursor.execute("COMMIT")
            return counts
        except BaseException:
            if self.postgres:
                self.driver.rollback()
            elif self.driver.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    def _time(self, seen: dict[datetime, Any], value: datetime) -> Any:
        converted = seen.get(value)
        if converted is None:
            converted = seen[value] = _driver_params(self.postgres, (value,))[0]
        return converted
