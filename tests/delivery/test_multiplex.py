"""The multiplexer (delivery.multiplex) on a real SQLite file and real sockets: tasks that ask
together share one transaction, a failed one takes none of their statements, a task waiting on
its socket holds nobody back, and sleeps, timeouts and helper calls end where they should."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline.db.engine import Store
from pipeline.db.raw import RawTransactions
from pipeline.delivery.multiplex import Blocking, Commit, Multiplexer, Sleep, Task
from pipeline.delivery.transports.stepwise import Wait
from tests.conftest import Campaign

INSERT = "INSERT INTO t VALUES (?, ?)"


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'commits.db'}")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, task INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO t VALUES (100, 0)")
    yield store
    store.close()


def run(store: Store, tasks: Sequence[Task]) -> tuple[list[str], list[BaseException]]:
    """Run the tasks on one connection: the COMMITs it made, and the errors of tasks that died."""
    seen: list[str] = []
    died: list[BaseException] = []
    with store.engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
        Multiplexer(RawTransactions(conn), died.append, helpers=2).run(tasks)
        driver.set_trace_callback(None)
    return seen, died


def rows(store: Store) -> list[tuple[int, int]]:
    with store.reading() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT id, task FROM t ORDER BY id"))]


def committing(statements: list[tuple[str, tuple[int, ...]]], out: list[Any]) -> Task:
    try:
        out.append((yield Commit(statements)))
    except sqlite3.Error as exc:
        out.append(exc)


def test_tasks_that_ask_together_share_one_transaction(store: Store) -> None:
    got: list[list[Any]] = [[], [], []]
    tasks = [committing([(INSERT, (n, n)), ("UPDATE t SET task = ? WHERE id = 100", (n,))], got[n - 1])
             for n in range(1, 4)]
    seen, died = run(store, tasks)
    assert (got, seen, died) == ([[[1, 1]], [[1, 1]], [[1, 1]]], ["COMMIT"], [])
    assert rows(store) == [(1, 1), (2, 2), (3, 3), (100, 3)]


def test_a_failed_transaction_takes_none_of_its_statements_and_tells_every_task(store: Store) -> None:
    got: list[list[Any]] = [[], []]
    seen, died = run(store, [committing([(INSERT, (1, 1))], got[0]), committing([(INSERT, (100, 2))], got[1])])
    assert [type(each[0]) for each in got] == [sqlite3.IntegrityError, sqlite3.IntegrityError]
    assert (seen, died) == ([], [])
    assert rows(store) == [(100, 0)]


def test_a_task_waiting_on_its_socket_holds_no_other_task_back(store: Store) -> None:
    here, there = socket.socketpair()
    order: list[str] = []

    def reader() -> Task:
        yield Wait(here.fileno(), False, 30.0)
        order.append(f"read {here.recv(10)!r}")

    def writer() -> Task:
        yield Commit([(INSERT, (1, 1))])
        order.append("committed")
        yield Sleep(time.monotonic() + 0.05)
        there.send(b"hello")

    with here, there:
        seen, died = run(store, [reader(), writer()])
    assert (order, seen, died) == (["committed", "read b'hello'"], ["COMMIT"], [])


def test_a_socket_that_stays_silent_past_its_timeout_gets_a_timeout_error(store: Store) -> None:
    here, there = socket.socketpair()
    got: list[str] = []

    def waiting() -> Task:
        started = time.monotonic()
        try:
            yield Wait(here.fileno(), False, 0.2)
        except TimeoutError as exc:
            got.append(f"{exc} after {time.monotonic() - started >= 0.2}")

    with here, there:
        assert run(store, [waiting()]) == ([], [])
    assert got == ["timed out after True"]


def test_a_sleep_ends_at_its_time_and_not_before(store: Store) -> None:
    woke: list[float] = []

    def sleeper(seconds: float) -> Task:
        until = time.monotonic() + seconds
        yield Sleep(until)
        woke.append(time.monotonic() - until)

    run(store, [sleeper(0.3), sleeper(0.1)])
    assert len(woke) == 2 and all(0 <= late < 0.15 for late in woke)


def test_a_blocking_call_runs_in_a_helper_thread_and_its_result_or_error_comes_back(store: Store) -> None:
    got: list[Any] = []

    def calls() -> Task:
        got.append((yield Blocking(lambda: threading.get_ident())))
        try:
            yield Blocking(lambda: 1 / 0)
        except ZeroDivisionError as exc:
            got.append(str(exc))

    run(store, [calls()])
    assert got[0] != threading.get_ident() and got[1:] == ["division by zero"]


def test_a_task_that_raises_is_reported_and_the_others_go_on(store: Store) -> None:
    got: list[Any] = []

    def failing() -> Task:
        yield Sleep(time.monotonic())
        raise RuntimeError("broken")

    seen, died = run(store, [failing(), committing([(INSERT, (1, 1))], got)])
    assert ([str(e) for e in died], got, seen) == (["broken"], [[1]], ["COMMIT"])


class Broken:
    def run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_failed_group_gives_back_every_row_its_slots_held(campaign: Campaign, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    import json

    from pipeline.db.engine import default_url
    from pipeline.db.schema import deliveries
    from tests.cli.test_sending import people

    people(campaign, 12)
    real_commit = Multiplexer._commit
    calls = {"n": 0}

    def failing(self: Multiplexer) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # a group in the middle of the send fails, as a deadlock or lost connection would
            self.raw = Broken()  # type: ignore[assignment]
        real_commit(self)

    monkeypatch.setattr(Multiplexer, "_commit", failing)
    result = campaign("send", "back-pain", "--yes")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("campaign: error: ")
    with Store(default_url(campaign.root)).reading() as conn:
        held = conn.execute(sa.select(sa.func.count()).where(
            deliveries.c.state == "queued", deliveries.c.worker.is_not(None))).scalar()
    assert held == 0  # nothing waits out a lease: the next run can send every queued row at once
    monkeypatch.setattr(Multiplexer, "_commit", real_commit)
    again = campaign("send", "back-pain", "--yes")
    assert again.exit_code == 0, again.stderr
    counts = json.loads(campaign("status", "back-pain", "--json").stdout)[0]["counts"]
    assert counts["queued"] == 0 and counts["sent"] + counts["unknown"] == 12
