"""Putting an import's new subscribers, their tags and their consent records into the database.

The importer decides row by row what changes (write.py); this module only stores the new rows,
in the way each database takes them fastest, inside the import's one transaction:

- SQLite: one executemany per table and batch, straight to the driver, and one statement per tag
  and batch; a large import drops the signup-date index and builds it again at the end (sorting
  once beats a million random inserts). The status CHECK is done here instead of by SQLite, which
  builds its IN list anew for every row: a third of the time a new subscriber's insert takes.
- PostgreSQL: ids are taken from the table's sequence, the rows are streamed with COPY into
  temporary staging tables, and at the end one INSERT .. SELECT per table merges them. COPY
  streams rows without a round trip per batch or per-row statement planning, and the staging
  tables have no index or constraint to maintain; the merge then pays for the real tables'
  indexes and foreign-key checks, most of an import's time there (benchmarks/README.md).

Rows arrive in the driver's form: timestamps as sql_time() text, custom fields as JSON text.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.db.raw import insert_many
from pipeline.db.schema import (
    STATUSES,
    imported_consents,
    signed_up_index,
    subscriber_tags,
    subscribers,
)
from pipeline.errors import StoreError

SUBSCRIBER_COLUMNS = ("email", "email_key", "first_name", "last_name", "fields", "timezone", "status",
                      "consent_source", "consent_at", "signed_up", "created_at", "updated_at")
CONSENT_COLUMNS = ("subscriber_id", "import_id", "requested_at", "requested_ip", "confirmed_at", "confirmed_ip")
TAG_COLUMNS = ("tag", "subscriber_id")


class Loader(Protocol):
    def stored(self, keys: Sequence[str]) -> list[str]:
        """Which of these email keys the subscribers table holds already (before this import)."""

    def subscribers(self, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """Store new subscribers (SUBSCRIBER_COLUMNS); their ids, in the same order."""

    def tags(self, rows: Sequence[tuple[str, int]]) -> None:
        """Store (tag, subscriber id) pairs."""

    def consents(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Store imported consent records (CONSENT_COLUMNS)."""


@contextlib.contextmanager
def loader(conn: Connection, large: bool) -> Iterator[Loader]:
    """The loader for this connection's database; what it staged is stored when the block ends."""
    if conn.dialect.name == "postgresql":
        staged = _Staged(conn)
        yield staged
        staged.merge()
        return
    with _indexes_rebuilt(conn) if large else contextlib.nullcontext(), _statuses_checked_here(conn):
        yield _Direct(conn)


class _Direct:
    """SQLite: straight into the tables."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def stored(self, keys: Sequence[str]) -> list[str]:
        # One parameter and a statement the driver keeps prepared, instead of 2,000 parameters
        # rendered into a new statement for every batch: four times faster.
        return [row[0] for row in self.conn.exec_driver_sql(
            "SELECT email_key FROM subscribers WHERE email_key IN (SELECT value FROM json_each(?))",
            (json.dumps(keys),))]

    def subscribers(self, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        if unknown := {row[_STATUS] for row in rows} - _VALID_STATUSES:
            # SQLite's CHECK is off here (_statuses_checked_here): refuse what it would have refused.
            raise StoreError(f"refused to store status {sorted(unknown)[0]!r}; the statuses are {', '.join(STATUSES)}")
        insert_many(self.conn, subscribers, SUBSCRIBER_COLUMNS, rows)
        return self._new_ids([row[1] for row in rows])

    def tags(self, rows: Sequence[tuple[str, int]]) -> None:
        # A list has a few tags, each on many rows: one statement per tag with its ids as a JSON
        # array costs a third less than a statement run for every pair.
        by_tag: dict[str, list[int]] = {}
        for tag, subscriber_id in rows:
            by_tag.setdefault(tag, []).append(subscriber_id)
        for tag, ids in by_tag.items():
            self.conn.exec_driver_sql(_TAGGED, (tag, json.dumps(ids)))

    def consents(self, rows: Sequence[tuple[Any, ...]]) -> None:
        insert_many(self.conn, imported_consents, CONSENT_COLUMNS, rows)

    def _new_ids(self, keys: list[str]) -> list[int]:
        """SQLite numbers new rows one after another from the largest id, and this transaction
        holds the write lock, so the ids are the last len(keys) numbers; the first and last are
        checked against the keys all the same, and looked up one by one if they do not match."""
        if not keys:
            return []
        last = int(self.conn.exec_driver_sql("SELECT last_insert_rowid()").scalar() or 0)
        first = last - len(keys) + 1
        found = {key: i for key, i in self.conn.execute(_IDS_OF, {"keys": [keys[0], keys[-1]]})}
        if found.get(keys[0]) == first and found.get(keys[-1]) == last:
            return list(range(first, last + 1))
        by_key = {key: i for key, i in self.conn.execute(_IDS_OF, {"keys": keys})}
        return [by_key[k] for k in keys]


_STATUS = SUBSCRIBER_COLUMNS.index("status")
_VALID_STATUSES = frozenset(STATUSES)
_TAGGED = "INSERT INTO subscriber_tags (tag, subscriber_id) SELECT ?, value FROM json_each(?)"
_IDS_OF = sa.select(subscribers.c.email_key, subscribers.c.id).where(
    subscribers.c.email_key.in_(sa.bindparam("keys", expanding=True)))


@contextlib.contextmanager
def _statuses_checked_here(conn: Connection) -> Iterator[None]:
    """SQLite's CHECK constraints are skipped while the block runs; the only one the import's
    statements meet is the subscribers' status, which _Direct checks itself (and the importer
    changes an existing subscriber's status only to one of the same few)."""
    conn.exec_driver_sql("PRAGMA ignore_check_constraints=ON")
    try:
        yield
    finally:
        if not conn.invalidated:  # a Ctrl-C inside a statement closes the connection
            conn.exec_driver_sql("PRAGMA ignore_check_constraints=OFF")


@contextlib.contextmanager
def _indexes_rebuilt(conn: Connection) -> Iterator[None]:
    """The signup-date index, which nothing reads during an import, is dropped and built again
    at the end, inside the import's transaction, so a failure restores it."""
    signed_up_index.drop(conn)
    yield
    signed_up_index.create(conn)


class _Staged:
    """PostgreSQL: COPY into staging tables that vanish with the transaction, merged at the end."""

    TABLES = (("import_subscribers", subscribers, ("id", *SUBSCRIBER_COLUMNS)),
              ("import_tags", subscriber_tags, TAG_COLUMNS),
              ("import_consents", imported_consents, CONSENT_COLUMNS))

    def __init__(self, conn: Connection) -> None:
        self.driver = conn.connection.driver_connection
        self.created = False

    def stored(self, keys: Sequence[str]) -> list[str]:
        # Staged rows are not merged yet, but the parser lets no address through twice.
        with self.driver.cursor() as cursor:
            cursor.execute("SELECT email_key FROM subscribers WHERE email_key = ANY(%s)", (list(keys),))
            return [row[0] for row in cursor.fetchall()]

    def _stage(self) -> None:
        if self.created:
            return
        with self.driver.cursor() as cursor:
            for staging, table, columns in self.TABLES:
                # Same column types, no constraints or indexes; dropped at commit or rollback.
                cursor.execute(f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS "
                               f"SELECT {', '.join(columns)} FROM {table.name} WITH NO DATA")
        self.created = True

    def _copy(self, staging: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self._stage()
        with self.driver.cursor() as cursor, \
                cursor.copy(f"COPY {staging} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def subscribers(self, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        if not rows:
            return []
        with self.driver.cursor() as cursor:
            # Ids straight from the sequence, so tags and consents can name them before the merge.
            cursor.execute("SELECT nextval(pg_get_serial_sequence('subscribers', 'id')) "
                           "FROM generate_series(1, %s)", (len(rows),))
            ids = [row[0] for row in cursor.fetchall()]
        self._copy("import_subscribers", self.TABLES[0][2], [(i, *row) for i, row in zip(ids, rows)])
        return ids

    def tags(self, rows: Sequence[tuple[str, int]]) -> None:
        self._copy("import_tags", TAG_COLUMNS, rows)

    def consents(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._copy("import_consents", CONSENT_COLUMNS, rows)

    def merge(self) -> None:
        if not self.created:
            return
        with self.driver.cursor() as cursor:
            for staging, table, columns in self.TABLES:  # subscribers first: the others refer to them
                names = ", ".join(columns)
                cursor.execute(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging}")
                cursor.execute(f"DROP TABLE {staging}")  # a second import in this transaction stages afresh
        self.created = False
