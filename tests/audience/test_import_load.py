"""How an import stores its rows (audience/importing/load.py): the checks SQLite is spared are
made all the same, and the connection is left as the import found it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.audience.consent import new_import
from pipeline.audience.importing.load import SUBSCRIBER_COLUMNS, loader
from pipeline.audience.importing.parse import STATUS_WORDS
from pipeline.audience.importing.write import BULK_FROM_BYTES, ImportOptions, import_csv
from pipeline.audience.subscribers import get
from pipeline.db.engine import CACHE_PAGES, Store
from pipeline.db.schema import STATUSES, subscriber_tags
from pipeline.errors import ImportFailed, StoreError

LIST = ("email,first_name,tags,note\n"
        "ana@example.com,Ana,\"vip,sleep\",\n"
        "ben@example.com,Ben,sleep,\"a\x1fb\"\n"
        "chloe@example.com,Chloé,,\n")


@pytest.fixture(params=["small", "large"])
def source(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The list, imported as a small file and by the large-file path (a helper process, the
    index rebuilt at the end)."""
    if request.param == "large":
        import pipeline.audience.importing.helper
        import pipeline.audience.importing.write

        monkeypatch.setattr(pipeline.audience.importing.helper, "PARALLEL_FROM_BYTES", 0)
        monkeypatch.setattr(pipeline.audience.importing.write, "BULK_FROM_BYTES", 0)
    assert BULK_FROM_BYTES > len(LIST)
    path = tmp_path / "list.csv"
    path.write_text(LIST, encoding="utf-8")
    return path


def test_tags_and_references_are_stored_whole(store: Store, source: Path) -> None:
    import_csv(store, source, ImportOptions())
    with store.reading() as conn:
        assert get(conn, "ana@example.com").tags == ("sleep", "vip")
        assert get(conn, "ben@example.com").tags == ("sleep",)
        assert get(conn, "chloe@example.com").tags == ()
        assert conn.execute(sa.select(sa.func.count()).select_from(subscriber_tags)).scalar() == 3
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").first() is None


def test_the_indexes_an_import_rebuilds_are_there_after_it(store: Store, source: Path) -> None:
    import_csv(store, source, ImportOptions())  # into an empty list: tags' subscriber index rebuilt too
    import_csv(store, source, ImportOptions(tags=("again",)))  # into a list that has them
    with store.reading() as conn:
        inspector = sa.inspect(conn)
        assert "subscribers_signed_up_status" in {index["name"] for index in inspector.get_indexes("subscribers")}
        assert "subscriber_tags_subscriber" in {index["name"] for index in inspector.get_indexes("subscriber_tags")}
        assert get(conn, "ana@example.com").tags == ("again", "sleep", "vip")


def test_consent_records_of_subscribers_whose_ids_do_not_follow_on(store: Store) -> None:
    """Each run of consecutive ids goes in as one statement, a gap starts a new one, a row
    without a record leaves none, and every record keeps its own subscriber, import and values."""
    stamp = "2026-01-01 00:00:00.000000"
    with store.transaction() as conn, loader(conn, large=False) as load:
        ids = load.subscribers([(f"r{n}@example.com", f"r{n}@example.com", None, None, "{}", None, "subscribed",
                                 "import:x", stamp, stamp, stamp, stamp) for n in range(8)])
        first, second = (new_import(conn, "import:x", datetime(2026, 1, 1, tzinfo=UTC)) for _ in range(2))
        load.consents(first, [ids[0], ids[2], ids[3], ids[4]], [
            (stamp, "192.0.2.1", None, None), (None, None, stamp, None), None, (stamp, None, stamp, "192.0.2.4")])
        load.consents(second, ids[5:], [(stamp, None, None, None), None, (None, "192.0.2.8", None, None)])
    with store.reading() as conn:
        stored = conn.exec_driver_sql(
            "SELECT subscriber_id, import_id, requested_at, requested_ip, confirmed_at, confirmed_ip "
            "FROM imported_consents ORDER BY subscriber_id").all()
    as_text = [tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row)
               for row in stored]
    assert as_text == [(ids[0], first, stamp, "192.0.2.1", None, None), (ids[2], first, None, None, stamp, None),
                       (ids[4], first, stamp, None, stamp, "192.0.2.4"), (ids[5], second, stamp, None, None, None),
                       (ids[7], second, None, "192.0.2.8", None, None)]


def _new(n: int) -> tuple[object, ...]:
    stamp = f"2026-01-01 00:00:{n % 60:02d}.000000"
    return (f"r{n}@example.com", f"r{n}@example.com", f"First{n}", None, f'{{"n": {n}}}', None, "subscribed",
            "import:x", stamp, stamp, stamp, stamp)


@pytest.mark.parametrize("variables", [None, 40])
def test_new_subscribers_go_in_several_rows_a_statement(tmp_path: Path, variables: int | None) -> None:
    """A batch longer than one statement takes, ending in a shorter one; with SQLite built to
    allow fewer parameters (40: three rows of twelve) the statements shrink to fit."""
    store = Store(f"sqlite:///{tmp_path / 'list.db'}")  # PostgreSQL stages its rows with COPY instead
    rows = [_new(n) for n in range(1234)]
    with store.transaction() as conn, loader(conn, large=False) as load:
        if variables is not None:
            conn.connection.driver_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variables)
        ids = load.subscribers(rows)
    with store.reading() as conn:
        stored = conn.exec_driver_sql(f"SELECT id, {', '.join(SUBSCRIBER_COLUMNS)} FROM subscribers ORDER BY id").all()
    assert ids == list(range(1, 1235))
    assert [tuple(row) for row in stored] == [(i, *row) for i, row in zip(ids, rows)]
    store.close()


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("variables", [None, 40])
def test_consent_records_go_in_several_a_statement(tmp_path: Path, variables: int | None, missing: bool) -> None:
    """Runs longer than one statement takes, each record with its own subscriber: all of a
    batch in one run, or a record missing in the middle; with SQLite built to allow 40
    parameters, nine records a statement (four values each after the two bound once)."""
    store = Store(f"sqlite:///{tmp_path / 'list.db'}")
    records: list[tuple[str | None, ...] | None] = [
        (f"2026-01-01 00:00:{n % 60:02d}.000000", f"192.0.2.{n % 250}", None, None) for n in range(1234)]
    if missing:
        records[600] = None
    with store.transaction() as conn, loader(conn, large=False) as load:
        if variables is not None:
            conn.connection.driver_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variables)
        ids = load.subscribers([_new(n) for n in range(1234)])
        import_id = new_import(conn, "import:x", datetime(2026, 1, 1, tzinfo=UTC))
        load.consents(import_id, ids, records)
    with store.reading() as conn:
        stored = conn.exec_driver_sql(
            "SELECT subscriber_id, import_id, requested_at, requested_ip, confirmed_at, confirmed_ip, "
            "typeof(subscriber_id) FROM imported_consents ORDER BY subscriber_id").all()
    assert [tuple(row) for row in stored] == [(i, import_id, *record, "integer")
                                              for i, record in zip(ids, records) if record is not None]
    store.close()


def test_a_second_row_for_an_address_rolls_the_whole_import_back(tmp_path: Path) -> None:
    """INSERT OR FAIL keeps the rows of the statement before the conflict; the transaction
    around the import is what takes them back out."""
    store = Store(f"sqlite:///{tmp_path / 'list.db'}")
    with pytest.raises(sa.exc.IntegrityError, match="UNIQUE constraint failed: subscribers.email_key"), \
            store.transaction() as conn, loader(conn, large=False) as load:
        load.subscribers([_new(1), _new(2), _new(1)])
    with store.reading() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM subscribers").scalar() == 0
    store.close()


def test_the_connection_checks_again_after_an_import(store: Store, source: Path) -> None:
    import_csv(store, source, ImportOptions())
    with store.transaction() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA ignore_check_constraints").scalar() == 0
            # the index rebuild's settings for sorting (large files) are undone too
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == CACHE_PAGES
            assert conn.exec_driver_sql("PRAGMA threads").scalar() == 0
        ana = get(conn, "ana@example.com")
    with pytest.raises(sa.exc.IntegrityError), store.transaction() as conn:
        conn.execute(sa.text("UPDATE subscribers SET status = 'asleep' WHERE id = :id"), {"id": ana.id})


def test_a_status_the_database_would_refuse_is_refused_before(store: Store, source: Path) -> None:
    assert set(STATUS_WORDS.values()) <= set(STATUSES)
    with pytest.raises(ImportFailed, match="unknown status 'asleep'"):
        import_csv(store, source, ImportOptions(status="asleep"))


def test_the_loader_refuses_a_status_sqlite_would_have_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'list.db'}")  # PostgreSQL keeps its own CHECK on
    row = {name: None for name in SUBSCRIBER_COLUMNS} | {
        "email": "ana@example.com", "email_key": "ana@example.com", "fields": "{}", "status": "asleep",
        "signed_up": "2026-01-01 00:00:00.000000", "created_at": "2026-01-01 00:00:00.000000",
        "updated_at": "2026-01-01 00:00:00.000000"}
    with pytest.raises(StoreError) as caught, store.transaction() as conn, loader(conn, large=False) as load:
        load.subscribers([tuple(row[name] for name in SUBSCRIBER_COLUMNS)])
    assert str(caught.value) == ("refused to store status 'asleep'; the statuses are "
                                 + ", ".join(STATUSES))
    with store.reading() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM subscribers").scalar() == 0
    store.close()


def test_a_row_turned_away_by_the_writer_keeps_its_cells(store: Store, source: Path) -> None:
    import_csv(store, source, ImportOptions(status="unsubscribed"))
    report = import_csv(store, source, ImportOptions())  # suppressed rows are not resubscribed
    assert report.rejects_path is not None
    rows = report.rejects_path.read_text(encoding="utf-8").splitlines()
    assert rows[2] == "ben@example.com,Ben,sleep,a\x1fb,line 3: ben@example.com is unsubscribed; use " \
                      "--resubscribe to subscribe it again"
