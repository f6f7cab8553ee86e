"""The ledger under the races that many workers make likely: a claim outlived by its lease, a
batch taken by two tasks at once, a batch whose rows the sweeper handed out again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.db.raw import run_sql
from pipeline.db.schema import deliveries
from pipeline.delivery.ledger import (
    LEASE,
    Batch,
    begin_statement,
    claim,
    not_started,
    reserve,
)
from pipeline.delivery.sending import begin_send, plan
from pipeline.settings.workspace import load_workspace
from tests.cli.test_sending import people
from tests.conftest import Campaign


def _begun(workspace_dir: Path, db_url: str, store: Store, count: int) -> int:
    people(Campaign(workspace_dir, db_url), count)
    ws = load_workspace(workspace_dir)
    return begin_send(store, plan(store, ws, "back-pain"), "back-pain", utcnow()).id


def _row(store: Store, delivery_id: int) -> tuple[str, str | None]:
    with store.reading() as conn:
        found = conn.execute(sa.select(deliveries.c.state, deliveries.c.worker).where(
            deliveries.c.id == delivery_id)).one()
    return found.state, found.worker


def test_a_claim_whose_lease_ran_out_leaves_the_row_to_its_new_holder(workspace_dir: Path, db_url: str,
                                                                       store: Store) -> None:
    send_id = _begun(workspace_dir, db_url, store, 1)
    now = utcnow()
    with store.transaction() as conn:
        (first,), _ = claim(conn, send_id, "host:1:a:0", 10, now)
    later = now + LEASE + timedelta(seconds=1)  # the first claimer was slow (a low rate): its lease ran out
    with store.transaction() as conn:
        (second,), _ = claim(conn, send_id, "host:2:b:0", 10, later)
    assert first.delivery_id == second.delivery_id
    with store.transaction() as conn:
        sql, params = begin_statement(first.delivery_id, "host:1:a:0", later)
        assert run_sql(conn, sql, *params).rowcount == 0
        assert not_started(conn, first.delivery_id, "host:1:a:0", later) == "taken"
    assert _row(store, first.delivery_id) == ("queued", "host:2:b:0")  # not skipped: the new holder sends it
    with store.transaction() as conn:
        sql, params = begin_statement(second.delivery_id, "host:2:b:0", later)
        assert run_sql(conn, sql, *params).rowcount == 1


def test_a_batch_is_taken_by_one_task_and_a_stale_token_takes_nothing(workspace_dir: Path, db_url: str,
                                                                       store: Store) -> None:
    send_id = _begun(workspace_dir, db_url, store, 6)
    now = utcnow()
    hold = now + timedelta(minutes=15)
    with store.transaction() as conn:
        ids = reserve(conn, send_id, "broker:old", 6, now, hold)
    batch = Batch(tuple(ids), "broker:old")
    with store.transaction() as conn:
        taken = reserve(conn, send_id, "host:1:w1", 6, now, hold, batch)
        again = reserve(conn, send_id, "host:2:w2", 6, now, hold, batch)  # the same batch, delivered twice
    assert sorted(taken) == sorted(ids) and again == []
    # The hold ran out and the sweeper handed the rows out again: the old batch, come back late, takes none.
    later = hold + timedelta(seconds=1)
    with store.transaction() as conn:
        assert sorted(reserve(conn, send_id, "broker:new", 6, later, later + timedelta(minutes=15))) == sorted(ids)
        assert reserve(conn, send_id, "host:3:w3", 6, later, later, batch) == []


def test_a_resume_between_a_paused_begin_and_its_look_gives_the_row_back(workspace_dir: Path, db_url: str,
                                                                         store: Store) -> None:
    send_id = _begun(workspace_dir, db_url, store, 2)
    now = utcnow()
    with store.transaction() as conn:
        (first, second), _ = claim(conn, send_id, "host:1:a:0", 10, now)
        run_sql(conn, "UPDATE sends SET state = 'paused' WHERE id = ?", send_id)
        sql, params = begin_statement(first.delivery_id, "host:1:a:0", now)
        assert run_sql(conn, sql, *params).rowcount == 0  # begin saw the pause
        run_sql(conn, "UPDATE sends SET state = 'sending' WHERE id = ?", send_id)  # resumed before the look
        assert not_started(conn, first.delivery_id, "host:1:a:0", now) == "taken"
        # A reader who really left is still skipped.
        run_sql(conn, "UPDATE subscribers SET status = 'unsubscribed' WHERE id = ?", second.subscriber_id)
        sql, params = begin_statement(second.delivery_id, "host:1:a:0", now)
        assert run_sql(conn, sql, *params).rowcount == 0
        assert not_started(conn, second.delivery_id, "host:1:a:0", now) == "skipped"
    assert _row(store, first.delivery_id) == ("queued", None)  # owed the message: back for the next claim
    assert _row(store, second.delivery_id) == ("skipped", None)
    with store.transaction() as conn:
        (again,), _ = claim(conn, send_id, "host:2:b:0", 10, now)
    assert again.delivery_id == first.delivery_id
