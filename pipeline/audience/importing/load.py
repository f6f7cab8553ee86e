"""Putting an import's new subscribers, their tags and their consent records into the database.

The importer decides row by row what changes (write.py); this module only stores the new rows,
in the way each database takes them fastest, inside the import's one transaction:

- SQLite: new subscribers and their consent records in statements of a few hundred rows each
  (multi-row VALUES), straight to the driver; one statement per tag and batch, reading its
  subscribers' ids from a JSON array (a third cheaper than a statement run for every pair). A
  large import drops the signup-date index and builds it again at the end (sorting once beats a
  million random inserts); into an empty list, where nothing looks tags up, the tags' subscriber
  index too. The status CHECK is done here instead of by SQLite, which builds its IN list anew
  for every row: a third of the time a new subscriber's insert takes.
- PostgreSQL: ids are taken from the table's sequence, the rows are streamed with COPY into
  temporary staging tables, and at the end one INSERT .. SELECT per table merges them. COPY
  streams rows without a round trip per batch or per-row statement planning, and the staging
  tables have no index or constraint to maintain; the merge then pays for the real tables'
  indexes and foreign-key checks, most of an import's time there (benchmarks/README.md).

Rows arrive in the driver's form: timestamps as sql_time() text, custom fields as JSON text.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.audience.importing.cells import to_json
from pipeline.db.schema import (
    STATUSES,
    imported_consents,
    signed_up_index,
    subscriber_tags,
    subscribers,
    tagged_index,
)
from pipeline.errors import StoreError

SUBSCRIBER_COLUMNS = ("email", "email_key", "first_name", "last_name", "fields", "timezone", "status",
                      "consent_source", "consent_at", "signed_up", "created_at", "updated_at")
CONSENT_COLUMNS = ("subscriber_id", "import_id", "requested_at", "requested_ip", "confirmed_at", "confirmed_ip")
TAG_COLUMNS = ("tag", "subscriber_id")
Consent = tuple[str | None, str | None, str | None, str | None]  # CONSENT_COLUMNS after the two ids


class Loader(Protocol):
    def stored(self, keys: Sequence[str]) -> list[str]:
        """Which of these email keys the subscribers table holds already (before this import)."""

    def subscribers(self, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """Store new subscribers (SUBSCRIBER_COLUMNS); their ids, in the same order."""

    def tags(self, tagged: Mapping[str, Sequence[int]]) -> None:
        """Store each tag on the subscribers it names by id."""

    def consents(self, import_id: int, ids: Sequence[int], records: Sequence[Consent | None]) -> None:
        """Store each subscriber's consent record from this import (requested_at, requested_ip,
        confirmed_at, confirmed_ip); None where a row had none."""


@contextlib.contextmanager
def loader(conn: Connection, large: bool, empty: bool = False) -> Iterator[Loader]:
    """The loader for this connection's database; what it staged is stored when the block ends.
    `large`: enough rows that rebuilding indexes beats updating them; `empty`: the list had no
    subscribers when the import's transaction began."""
    if conn.dialect.name == "postgresql":
        staged = _Staged(conn)
        yield staged
        staged.merge()
        return
    rebuilt = (signed_up_index, tagged_index) if large and empty else (signed_up_index,) if large else ()
    with _indexes_rebuilt(conn, rebuilt), _statuses_checked_here(conn):
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
        # Hundreds of rows a statement instead of one: the driver's per-row reset and step go, and
        # a third of the insert's time with them. OR FAIL because SQLite would otherwise keep a
        # statement journal of every unique-index page a statement touches, only to undo part of
        # a statement after a conflict; any error rolls the whole import back anyway.
        size = self._rows_per_statement(len(SUBSCRIBER_COLUMNS))
        for start in range(0, len(rows), size):
            part = rows[start:start + size]
            self.conn.exec_driver_sql(_inserting(len(part)), tuple(chain.from_iterable(part)))
        return self._new_ids([row[1] for row in rows])

    def tags(self, tagged: Mapping[str, Sequence[int]]) -> None:
        # A list has a few tags, each on many rows: one statement per tag with its ids as a JSON
        # array costs a third less than a statement run for every pair.
        for tag, ids in tagged.items():
            self.conn.exec_driver_sql(_TAGGED, (tag, to_json(ids)))

    def consents(self, import_id: int, ids: Sequence[int], records: Sequence[Consent | None]) -> None:
        # Multi-row statements as for subscribers, which take a fifth less time than reading the
        # records from JSON. A batch's new subscribers have consecutive ids, so a statement
        # numbers its rows from the first one (?1 + n) and binds the import once (?2): the
        # records' own values are the rest of its parameters.
        size = self._rows_per_statement(len(CONSENT_COLUMNS) - 2, fixed=2)
        for start, end in _runs(ids, records):
            for at in range(start, end, size):
                part = records[at:min(at + size, end)]
                self.conn.exec_driver_sql(_consenting(len(part)), (ids[at], import_id, *chain.from_iterable(part)))

    def _rows_per_statement(self, width: int, fixed: int = 0) -> int:
        """As many rows as _ROWS_PER_INSERT, or fewer if this SQLite takes fewer parameters."""
        limit = self.conn.connection.driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return max(1, min(_ROWS_PER_INSERT, (limit - fixed) // width))

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


def _runs(ids: Sequence[int], records: Sequence[Consent | None]) -> Iterator[tuple[int, int]]:
    """(start, end) stretches of the records with no None in them and ids that count up by one."""
    if (ids and records.count(None) == 0 and ids[-1] - ids[0] == len(ids) - 1
            and list(ids) == list(range(ids[0], ids[-1] + 1))):
        yield 0, len(ids)  # the usual case (new subscribers' ids, each with a record), checked in C
        return
    start = None
    for n, record in enumerate(records):
        if start is not None and (record is None or ids[n] != ids[n - 1] + 1):
            yield start, n
            start = None
        if start is None and record is not None:
            start = n
    if start is not None:
        yield start, len(records)


@functools.lru_cache(maxsize=16)
def _inserting(count: int) -> str:
    row = f"({', '.join('?' * len(SUBSCRIBER_COLUMNS))})"
    return f"INSERT OR FAIL INTO subscribers ({', '.join(SUBSCRIBER_COLUMNS)}) VALUES {', '.join([row] * count)}"


@functools.lru_cache(maxsize=16)
def _consenting(count: int) -> str:
    width = len(CONSENT_COLUMNS) - 2  # after the id and the import, bound once as ?1 and ?2
    rows = (f"(?1 + {n}, ?2, {', '.join(f'?{3 + width * n + k}' for k in range(width))})" for n in range(count))
    return f"INSERT OR FAIL INTO imported_consents ({', '.join(CONSENT_COLUMNS)}) VALUES {', '.join(rows)}"


_ROWS_PER_INSERT = 500
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
def _indexes_rebuilt(conn: Connection, indexes: Sequence[sa.Index]) -> Iterator[None]:
    """Indexes the import does not read are dropped and built again at the end, inside the
    import's transaction, so a failure restores them."""
    for index in indexes:
        index.drop(conn)
    yield
    if not indexes:
        return
    with _sorting_in_threads(conn):
        for index in indexes:
            index.create(conn)


@contextlib.contextmanager
def _sorting_in_threads(conn: Connection) -> Iterator[None]:
    """SQLite sorts an index's entries in one piece, on the calling thread, while the cache
    holds them all; with a cache of a few megabytes it sorts them in pieces on helper threads as
    it reads the table, on a core the parsing process has left idle by then: the signup-date
    index of a million subscribers in 0.7 s instead of 1.4 s."""
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    threads = conn.exec_driver_sql("PRAGMA threads").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size={_SORT_CACHE}")
    conn.exec_driver_sql(f"PRAGMA threads={_SORT_THREADS}")
    try:
        yield
    finally:
        if not conn.invalidated:  # a Ctrl-C inside a statement closes the connection
            conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")
            conn.exec_driver_sql(f"PRAGMA threads={int(threads)}")


_SORT_CACHE = -4096  # KiB: pieces of 4 MB
_SORT_THREADS = 2


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

    def tags(self, tagged: Mapping[str, Sequence[int]]) -> None:
        self._copy("import_tags", TAG_COLUMNS, [(tag, i) for tag, ids in tagged.items() for i in ids])

    def consents(self, import_id: int, ids: Sequence[int], records: Sequence[Consent | None]) -> None:
        self._copy("import_consents", CONSENT_COLUMNS,
                   [(i, import_id, *record) for i, record in zip(ids, records) if record is not None])

    def merge(self) -> None:
        if not self.created:
            return
        with self.driver.cursor() as cursor:
            for staging, table, columns in self.TABLES:  # subscribers first: the others refer to them
                names = ", ".join(columns)
                cursor.execute(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging}")
                cursor.execute(f"DROP TABLE {staging}")  # a second import in this transaction stages afresh
        self.created = False
