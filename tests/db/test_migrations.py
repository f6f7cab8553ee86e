from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.db import migrations as store_module
from pipeline.db.engine import Store
from pipeline.db.migrations import SCHEMA_VERSION, current_version
from pipeline.db.schema import schema_version
from pipeline.errors import StoreError


def test_new_database_is_at_the_current_version(store: Store) -> None:
    with store.reading() as conn:
        assert current_version(conn) == SCHEMA_VERSION
        assert {"subscribers", "subscriber_tags", "suppressions", "subscriber_events"} <= set(
            sa.inspect(conn).get_table_names())


def test_an_older_database_upgrades_itself_keeping_its_data(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old = Store(db_url)
    with old.transaction() as conn:
        conn.execute(sa.text("INSERT INTO custom_fields (name) VALUES ('city')"))
    old.close()

    def add_table(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE upgraded_marker (id INTEGER PRIMARY KEY)"))

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, add_table])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = Store(db_url)
    with upgraded.reading() as conn:
        assert current_version(conn) == SCHEMA_VERSION + 1
        assert "upgraded_marker" in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("SELECT name FROM custom_fields")).scalars().all() == ["city"]
    upgraded.close()


def test_a_newer_database_names_the_upgrade_command(db_url: str) -> None:
    Store(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(schema_version.update().values(version=SCHEMA_VERSION + 5))
    engine.dispose()
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 5}, newer than this program's "
                                         rf"{SCHEMA_VERSION}: upgrade campaign-pipeline \(pip install -U "
                                         r"campaign-pipeline\)"):
        Store(db_url)


def test_opening_an_upgraded_database_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'campaign.db'}"
    Store(url).close()
    writer = sqlite3.connect(tmp_path / "campaign.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a long import holds the write lock
    try:
        reader = Store(url)  # would wait out the 30 s busy timeout and fail if it took the lock
        with reader.reading() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM subscribers")).scalar() == 0
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_bad_urls_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"^cannot use database URL 'nonsense'"):
        Store("nonsense")
    with pytest.raises(StoreError, match=r"^unsupported database 'mysql'"):
        Store("mysql://u@localhost/x")
    with pytest.raises(StoreError, match=r"^cannot open database sqlite:///.*/missing/dir/x\.db: unable to open"):
        Store(f"sqlite:///{tmp_path}/missing/dir/x.db")


def test_version_5_replaces_the_claim_index_with_a_partial_one(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:4])
        patch.setattr(store_module, "SCHEMA_VERSION", 4)
        old = Store(db_url)
        with old.transaction() as conn:  # the index as version 2 made it
            conn.execute(sa.text("DROP INDEX deliveries_due"))
            conn.execute(sa.text("CREATE INDEX deliveries_claim ON deliveries (send_id, state, due_at)"))
        old.close()
    upgraded = Store(db_url)
    with upgraded.reading() as conn:
        names = {index["name"] for index in sa.inspect(conn).get_indexes("deliveries")}
    upgraded.close()
    assert "deliveries_due" in names and "deliveries_claim" not in names


def test_version_7_never_gives_an_erased_subscribers_id_again(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.audience.subscribers import Changes, add, erase, find
    from pipeline.db.schema import subscriber_tags, subscribers

    with monkeypatch.context() as patch:  # a database made before version 7: plain rowids on SQLite
        patch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:6])
        patch.setattr(store_module, "SCHEMA_VERSION", 6)
        patch.setitem(subscribers.dialect_options["sqlite"], "autoincrement", False)
        old = Store(db_url)
        with old.transaction() as conn:
            for name in ("ana", "ben"):
                add(conn, f"{name}@example.com", Changes(first_name=name.title(), tags={"back-pain"}), "test")
        old.close()
    store = Store(db_url)
    with store.transaction() as conn:
        if conn.dialect.name == "sqlite":
            made = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").scalar()
            assert "AUTOINCREMENT" in made
        assert [(s.email, s.first_name, s.tags) for s in map(lambda a: find(conn, a), ("ana@example.com",
                "ben@example.com"))] == [("ana@example.com", "Ana", ("back-pain",)), ("ben@example.com", "Ben",
                                                                                     ("back-pain",))]
        cleo, _ = add(conn, "cleo@example.com", Changes(tags={"sleep"}), "test")
        erase(conn, "cleo@example.com", "test")
        dan, _ = add(conn, "dan@example.com", Changes(), "test")
        assert dan.id > cleo.id  # the erased reader's id (the highest) is not given again
        # Foreign keys still hold and still cascade after the rebuild.
        assert conn.execute(sa.select(sa.func.count()).select_from(subscriber_tags).where(
            subscriber_tags.c.subscriber_id == cleo.id)).scalar() == 0
    with pytest.raises(sa.exc.IntegrityError):
        with store.transaction() as conn:
            conn.execute(subscriber_tags.insert().values(tag="x", subscriber_id=9999))
    store.close()
