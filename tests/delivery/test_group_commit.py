"""Group commit (delivery.commits) on a real SQLite file: the threads that meet share one
transaction, and a transaction that fails takes none of their statements."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.db.engine import Store
from pipeline.db.raw import RawTransactions
from pipeline.delivery.commits import GroupCommit
from tests.conftest import Campaign


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'commits.db'}")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, thread INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO t VALUES (100, 0)")
    yield store
    store.close()


def run_threads(store: Store, commits: GroupCommit, statements: list[list[tuple[str, tuple[int, ...]]]],
                commits_seen: list[str]) -> list[list[int] | BaseException]:
    """Each list of statements from a thread of its own, on a connection of its own, all started together."""
    results: list[list[int] | BaseException] = [[] for _ in statements]
    start = threading.Barrier(len(statements))

    def thread(n: int) -> None:
        with store.engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            driver.set_trace_callback(lambda sql: commits_seen.append(sql) if sql == "COMMIT" else None)
            raw = RawTransactions(conn)
            commits.join()
            try:
                start.wait()
                results[n] = commits.run(raw, statements[n])
            except Exception as exc:
                results[n] = exc
            finally:
                commits.leave()
                driver.set_trace_callback(None)

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(len(statements))]
    for each in threads:
        each.start()
    for each in threads:
        each.join(30)
    return results


def rows(store: Store) -> list[tuple[int, int]]:
    with store.reading() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT id, thread FROM t ORDER BY id"))]


def test_threads_that_meet_share_one_transaction(store: Store) -> None:
    seen: list[str] = []
    statements = [[("INSERT INTO t VALUES (?, ?)", (n, n)), ("UPDATE t SET thread = ? WHERE id = 100", (n,))]
                  for n in range(1, 4)]
    results = run_threads(store, GroupCommit(gather=10.0), statements, seen)
    assert results == [[1, 1], [1, 1], [1, 1]]
    assert seen == ["COMMIT"]  # three threads, one transaction
    assert [r for r in rows(store) if r[0] != 100] == [(1, 1), (2, 2), (3, 3)]


def test_a_failed_transaction_takes_none_of_its_statements_and_tells_every_thread(store: Store) -> None:
    seen: list[str] = []
    statements = [[("INSERT INTO t VALUES (?, ?)", (1, 1))], [("INSERT INTO t VALUES (?, ?)", (100, 2))]]
    results = run_threads(store, GroupCommit(gather=10.0), statements, seen)
    assert [type(r) for r in results] == [sqlite3.IntegrityError, sqlite3.IntegrityError]
    assert seen == []
    assert rows(store) == [(100, 0)]


def test_a_thread_alone_does_not_wait(store: Store) -> None:
    seen: list[str] = []
    started = time.monotonic()
    results = run_threads(store, GroupCommit(gather=10.0), [[("INSERT INTO t VALUES (?, ?)", (1, 1))]], seen)
    assert time.monotonic() - started < 5.0  # far less than the 10 s a transaction may wait for others
    assert results == [[1]]
    assert seen == ["COMMIT"]


def test_a_failed_group_gives_back_every_row_its_threads_held(campaign: Campaign, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    import json

    from pipeline.db.engine import default_url
    from pipeline.db.schema import deliveries
    from tests.cli.test_sending import people

    people(campaign, 12)
    real_run = GroupCommit.run
    calls = {"n": 0}

    def failing(self: GroupCommit, raw: RawTransactions, statements: list[tuple[str, tuple[object, ...]]]
                ) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 5:  # a group in the middle of the send fails, as a deadlock or lost connection would
            raise sqlite3.OperationalError("disk I/O error")
        return real_run(self, raw, statements)

    monkeypatch.setattr(GroupCommit, "run", failing)
    result = campaign("send", "back-pain", "--yes")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("campaign: error: ")
    with Store(default_url(campaign.root)).reading() as conn:
        held = conn.execute(sa.select(sa.func.count()).where(
            deliveries.c.state == "queued", deliveries.c.worker.is_not(None))).scalar()
    assert held == 0  # nothing waits out a lease: the next run can send every queued row at once
    monkeypatch.setattr(GroupCommit, "run", real_run)
    again = campaign("send", "back-pain", "--yes")
    assert again.exit_code == 0, again.stderr
    counts = json.loads(campaign("status", "back-pain", "--json").stdout)[0]["counts"]
    assert counts["queued"] == 0 and counts["sent"] + counts["unknown"] == 12
