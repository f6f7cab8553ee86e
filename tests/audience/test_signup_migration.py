"""Schema version 9 (db.migrations_signup): a database of version 8 learns the `pending` status and
gains the consent and limit tables, keeping its rows, its indexes, its references and the rule that
an erased subscriber's id is never given again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from pipeline.audience.subscribers import Changes, add, erase, find, request_pending
from pipeline.db import migrations
from pipeline.db.engine import Store
from pipeline.db.migrations import current_version
from pipeline.db.schema import subscriber_tags, subscribers

V8_CHECK = "status IN ('subscribed', 'unsubscribed', 'bounced', 'complained')"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def version_8(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database as version 8 made it: four statuses, no consent or limit tables."""
    (check,) = [c for c in subscribers.constraints if c.name == "subscribers_status"]
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:8])
        patch.setattr(migrations, "SCHEMA_VERSION", 8)
        patch.setattr(check, "sqltext", sa.text(V8_CHECK))
        old = Store(db_url)
        with old.transaction() as conn:
            for name in ("ana", "ben", "cleo"):
                add(conn, f"{name}@example.com", Changes(first_name=name.title(), tags={"back-pain"}), "test")
            conn.execute(subscribers.delete().where(subscribers.c.email == "cleo@example.com"))  # the highest id
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                conn.execute(subscribers.update().where(subscribers.c.email == "ana@example.com")
                             .values(status="pending"))
        old.close()


def test_version_9_allows_pending_and_keeps_everything_else(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    version_8(db_url, monkeypatch)
    with monkeypatch.context() as patch:  # version 9 alone, whatever later versions do
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:9])
        patch.setattr(migrations, "SCHEMA_VERSION", 9)
        Store(db_url).close()
    store = Store(db_url)  # and on to the current version
    with store.transaction() as conn:
        assert current_version(conn) == migrations.SCHEMA_VERSION >= 9
        tables = set(sa.inspect(conn).get_table_names())
        assert {"consents", "signup_limits"} <= tables
        indexes = {index["name"] for index in sa.inspect(conn).get_indexes("subscribers")}
        assert "subscribers_signed_up_status" in indexes
        found = [find(conn, f"{n}@example.com") for n in ("ana", "ben")]
        assert [(s.first_name, s.tags, s.status) for s in found if s] == [("Ana", ("back-pain",), "subscribed"),
                                                                         ("Ben", ("back-pain",), "subscribed")]
        dan, new = request_pending(conn, "dan@example.com", "Dan", ["sleep"], "web:signup", NOW)
        assert new and dan is not None and dan.status == "pending"
        assert dan.id == 4  # not 3: cleo's id stays unused
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            conn.execute(subscribers.update().where(subscribers.c.id == dan.id).values(status="confused"))
        erase(conn, "dan@example.com", "test")  # references still cascade after the rebuild
        assert conn.execute(sa.select(sa.func.count()).select_from(subscriber_tags).where(
            subscriber_tags.c.subscriber_id == dan.id)).scalar() == 0
    with pytest.raises(sa.exc.IntegrityError), store.transaction() as conn:
        conn.execute(subscriber_tags.insert().values(tag="x", subscriber_id=9999))
    store.close()
    # Opening it again changes nothing.
    again = Store(db_url)
    with again.reading() as conn:
        assert current_version(conn) == migrations.SCHEMA_VERSION
    again.close()


def test_version_9_is_idempotent_on_a_database_that_has_it(db_url: str) -> None:
    from pipeline.db.migrations_signup import v9

    Store(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        before = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").scalar() \
            if conn.dialect.name == "sqlite" else None
        v9(conn)
        if before is not None:
            assert conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").scalar() == before
    engine.dispose()


def test_a_new_database_is_made_at_version_9_directly(store: Store) -> None:
    with store.transaction() as conn:
        subscriber, _ = request_pending(conn, "ana@example.com", None, [], "web:signup", NOW)
        assert subscriber is not None and subscriber.status == "pending"
        if conn.dialect.name == "sqlite":
            made = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").scalar()
            assert "'pending'" in made and "AUTOINCREMENT" in made
