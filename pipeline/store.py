"""The database: one SQLAlchemy Core schema for SQLite (the default) and PostgreSQL.

The schema carries its version in `schema_version`; opening an older database upgrades it in
one transaction, so every command sees the current shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from pipeline.errors import CampaignError

DB_NAME = "campaign.db"
STATUSES = ("subscribed", "unsubscribed", "bounced", "complained")
SUPPRESSED = ("unsubscribed", "bounced", "complained")


class StoreError(CampaignError):
    """The database cannot be opened or is of a version this program does not know."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC on every database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    # The lower-cased address: uniqueness and look-ups ignore case.
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("first_name", sa.String(200)),
    sa.Column("last_name", sa.String(200)),
    sa.Column("fields", sa.JSON().with_variant(JSONB(), "postgresql"),
              nullable=False, default=dict),
    sa.Column("timezone", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("consent_source", sa.String(200)),
    sa.Column("consent_at", UTCDateTime),
    sa.Column("signed_up", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="subscribers_status"),
)
# Date-range segments read this index alone. Status is second on purpose: led by status, SQLite
# would scan it for every segment instead of looking rows up from a tag's short list.
signed_up_index = sa.Index("subscribers_signed_up_status", subscribers.c.signed_up, subscribers.c.status)

subscriber_tags = sa.Table(
    "subscriber_tags", metadata,
    sa.Column("tag", sa.String(100), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
              primary_key=True),
    sqlite_with_rowid=False,  # the primary key is the table: one b-tree to write, not two
)
sa.Index("subscriber_tags_subscriber", subscriber_tags.c.subscriber_id)

# Custom field names seen so far, so segment errors can list them without scanning every row.
custom_fields = sa.Table(
    "custom_fields", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
)

# Erased addresses: only a hash remains, so they are never mailed again.
suppressions = sa.Table(
    "suppressions", metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Every change of a subscriber's status, with when and where it came from.
subscriber_events = sa.Table(
    "subscriber_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="SET NULL")),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("subscriber_events_subscriber", subscriber_events.c.subscriber_id)


SEND_STATES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")
DELIVERY_STATES = ("queued", "sending", "sent", "failed", "skipped", "unknown")

# One row per send of a campaign: a one-off campaign has one, a recurring one one per occurrence.
sends = sa.Table(
    "sends", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign", sa.String(100), nullable=False),
    sa.Column("occurrence", sa.String(40), nullable=False, default=""),  # "" for one-off campaigns
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("segment", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("scheduled_at", UTCDateTime),  # the instant, or with local_time the wall time's date anchor
    sa.Column("local_time", sa.String(5)),  # "09:00" when each recipient gets it at that time in their zone
    sa.Column("timezone", sa.String(64)),
    sa.Column("snapshot_at", UTCDateTime),  # when the recipients were fixed
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("campaign", "occurrence", name="sends_campaign_occurrence"),
    sa.CheckConstraint(f"state IN ({', '.join(repr(s) for s in SEND_STATES)})", name="sends_state"),
)

# One row per (send, subscriber), made when the send starts; the unit of "exactly once".
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="SET NULL")),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_until", UTCDateTime),  # a claim: until then, the worker named below owns the row
    sa.Column("worker", sa.String(64)),
    sa.Column("message_id", sa.String(255)),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("error", sa.Text),  # the server's reply for failed and retried deliveries
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("send_id", "subscriber_id", name="deliveries_send_subscriber"),
    sa.CheckConstraint(f"state IN ({', '.join(repr(s) for s in DELIVERY_STATES)})", name="deliveries_state"),
)
# Claims look for a send's queued rows, oldest due first. Only queued rows are in this index,
# so marking a row sending or sent removes one entry instead of rewriting it (a third less
# work per message), and claims never step over rows already sent.
_QUEUED = sa.text("state = 'queued'")
queued_index = sa.Index("deliveries_due", deliveries.c.send_id, deliveries.c.due_at, deliveries.c.id,
                        sqlite_where=_QUEUED, postgresql_where=_QUEUED)
sa.Index("deliveries_subscriber", deliveries.c.subscriber_id)


BOUNCE_KINDS = ("hard", "soft", "complaint")

# One row per bounced or complaining recipient of an imported report (DSN, ARF or a provider's
# CSV row). report_key is unique, so importing the same report again finds it and changes nothing.
bounces = sa.Table(
    "bounces", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("report_key", sa.String(64), nullable=False, unique=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="SET NULL")),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="SET NULL")),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16)),  # the enhanced status code, "5.1.1"
    sa.Column("diagnostic", sa.Text),  # the remote server's words, addresses blanked out
    sa.Column("source", sa.String(500), nullable=False),  # the file (and CSV line) it came from
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in BOUNCE_KINDS)})", name="bounces_kind"),
)
sa.Index("bounces_subscriber", bounces.c.subscriber_id)
sa.Index("bounces_send", bounces.c.send_id)


# A recurring campaign that was started with `campaign schedule`: when, and its last occurrence.
recurrences = sa.Table(
    "recurrences", metadata,
    sa.Column("campaign", sa.String(100), primary_key=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("last_occurrence", UTCDateTime),  # the instant of the latest occurrence dealt with
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Every article a recurring digest has sent, so none goes out twice.
digest_articles = sa.Table(
    "digest_articles", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign", sa.String(100), nullable=False),
    sa.Column("article_key", sa.String(500), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="SET NULL")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("campaign", "article_key", name="digest_articles_campaign_key"),
)

# What an occurrence of a recurring campaign says, fixed when it is made: the feed may change
# before every recipient's copy has gone out.
send_content = sa.Table(
    "send_content", metadata,
    sa.Column("send_id", sa.Integer, sa.ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[subscribers, subscriber_tags, custom_fields, suppressions,
                                      subscriber_events])


def _v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[sends, deliveries])


def _v3(conn: Connection) -> None:
    metadata.create_all(conn, tables=[bounces])


def _v4(conn: Connection) -> None:
    metadata.create_all(conn, tables=[recurrences, digest_articles, send_content])


def _v5(conn: Connection) -> None:
    # Version 2 had a full (send_id, state, due_at) index; the partial one replaces it.
    conn.execute(sa.text("DROP INDEX IF EXISTS deliveries_claim"))
    queued_index.create(conn, checkfirst=True)


# One function per schema version, applied in order; never edit one that has shipped.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5]
SCHEMA_VERSION = len(MIGRATIONS)


def sql_time(value: datetime) -> str:
    """An instant as the text both databases take for a timestamp, and SQLite stores:
    "2026-03-01 09:30:00.000000" in UTC. Bulk inserts send this instead of datetimes."""
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).replace(tzinfo=None).isoformat(
        " ", "microseconds")


def as_utc(moment: datetime) -> datetime:
    """An aware UTC instant; a naive time is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time ("Z" allowed; without an offset, UTC) as an aware UTC instant.
    Raises ValueError for anything else."""
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def from_sql_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


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


def insert_many(conn: Connection, table: sa.Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows with one executemany, bypassing SQLAlchemy's per-value processing.

    A million-row import spends most of its time there otherwise. Values must already be in
    the driver's form: timestamps as sql_time() text, JSON as text.
    """
    if not rows:
        return
    postgres = conn.dialect.name == "postgresql"
    marks = []
    for name in names:
        kind = table.c[name].type
        cast = "::jsonb" if isinstance(kind, sa.JSON) else "::timestamp" if isinstance(kind, UTCDateTime) else ""
        marks.append("%s" + cast if postgres else "?")
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join(marks)})"
    conn.exec_driver_sql(sql, list(rows))


@contextmanager
def bulk_load(conn: Connection) -> Iterator[None]:
    """Around a large import on SQLite: the signup-date index, which nothing reads during an
    import, is dropped and built again at the end (sorting once beats a million random index
    inserts). Both happen inside the import's transaction, so a failure restores it. On
    PostgreSQL, dropping an index would lock out readers, so nothing changes there."""
    if conn.dialect.name != "sqlite":
        yield
        return
    signed_up_index.drop(conn)
    yield
    signed_up_index.create(conn)


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
    cursor.execute("PRAGMA cache_size=-65536")
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
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot use database URL {_safe(url)!r}: {exc}") from None
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


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


def upgrade(engine: Engine) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before."""
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7243001)"))  # one upgrader at a time
        found = current_version(conn)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"the database is at schema version {found}, newer than this program's "
                f"{SCHEMA_VERSION}: upgrade campaign-pipeline (pip install -U campaign-pipeline)"
            )
        if found == 0:
            schema_version.create(conn, checkfirst=True)
        for version in range(found, SCHEMA_VERSION):
            MIGRATIONS[version](conn)
        if found != SCHEMA_VERSION:
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
        return found


class Store:
    """An engine on an upgraded database."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        try:
            # Upgrading takes the write lock: only when needed, or every command would queue
            # behind a long import. upgrade() looks again under the lock.
            with self.engine.connect() as conn:
                current = current_version(conn) == SCHEMA_VERSION
            if not current:
                upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open database {_safe(url)}: {exc.orig}") from None

    def transaction(self, rollback: bool = False) -> AbstractContextManager[Connection]:
        return writing(self.engine, rollback)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
