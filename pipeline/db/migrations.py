"""Schema versions: the database carries its version in `schema_version`, and opening an older
database upgrades it in one transaction, so every command sees the current shape."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateTable

from pipeline.db import migrations_consents, migrations_signup, migrations_tracking
from pipeline.db.schema import (
    bounces,
    custom_fields,
    deliveries,
    digest_articles,
    leased_index,
    metadata,
    queued_index,
    recurrences,
    schema_version,
    send_content,
    send_events,
    sends,
    signed_up_index,
    subscriber_events,
    subscriber_tags,
    subscribers,
    suppressions,
)
from pipeline.db.transactions import writing
from pipeline.errors import StoreError


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


def _v6(conn: Connection) -> None:
    metadata.create_all(conn, tables=[send_events])


def _v7(conn: Connection) -> None:
    """SQLite gives the highest id again once its row is deleted; AUTOINCREMENT never does, but it
    can only be had by building the table anew (foreign keys are off for the upgrade, see below)."""
    if conn.dialect.name != "sqlite":
        return
    made = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'subscribers'").scalar()
    if made is None or "AUTOINCREMENT" in str(made).upper():
        return
    create = str(CreateTable(subscribers).compile(dialect=conn.dialect)).strip()
    assert create.startswith("CREATE TABLE subscribers ")
    conn.exec_driver_sql(create.replace("CREATE TABLE subscribers ", "CREATE TABLE subscribers_rebuilt ", 1))
    names = ", ".join(c.name for c in subscribers.columns)
    conn.exec_driver_sql(f"INSERT INTO subscribers_rebuilt ({names}) SELECT {names} FROM subscribers")
    conn.exec_driver_sql("DROP TABLE subscribers")
    conn.exec_driver_sql("ALTER TABLE subscribers_rebuilt RENAME TO subscribers")
    signed_up_index.create(conn)


def _v8(conn: Connection) -> None:
    # A database made new has the column already: version 4 creates the table as it is now.
    present = {column["name"] for column in sa.inspect(conn).get_columns("recurrences")}
    if "next_at" not in present:
        conn.execute(sa.text("ALTER TABLE recurrences ADD COLUMN next_at TIMESTAMP"))
        conn.execute(sa.text("ALTER TABLE recurrences ADD COLUMN settings_stamp VARCHAR(64)"))
    leased_index.create(conn, checkfirst=True)


# One function per schema version, applied in order; never edit one that has shipped.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, migrations_signup.v9,
                                                  migrations_tracking.v10, migrations_consents.v11]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def is_current(conn: Connection) -> bool:
    return current_version(conn) == SCHEMA_VERSION


def upgrade(engine: Engine) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before.

    On SQLite, foreign keys are off while it runs (a table rebuilt must not cascade its drop into
    the tables that refer to it), and checked before the upgrade commits.
    """
    with writing(engine, foreign_keys=False) as conn:
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
        if conn.dialect.name == "sqlite" and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
            raise StoreError("the upgrade would break references between tables; nothing was changed")
        return found
