"""Schema versions: the database carries its version in `schema_version`, and opening an older
database upgrades it in one transaction, so every command sees the current shape."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline.db.schema import (
    bounces,
    custom_fields,
    deliveries,
    digest_articles,
    metadata,
    queued_index,
    recurrences,
    schema_version,
    send_content,
    sends,
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


# One function per schema version, applied in order; never edit one that has shipped.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def is_current(conn: Connection) -> bool:
    return current_version(conn) == SCHEMA_VERSION


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
