"""Unsubscribes while another process holds SQLite's write lock (an import of a big file): answered
at once, journaled beside the database, applied as soon as the lock frees, and never mailed."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.audience import preferences
from pipeline.audience.subscribers import Changes, add, erase, get, set_status
from pipeline.audience.tokens import Tokens
from pipeline.audience.unsubscribe_journal import (
    Journal,
    Unsubscribes,
    apply_pending_unsubscribes,
    journal_for,
)
from pipeline.db.engine import Store, create_engine
from pipeline.db.schema import deliveries, subscribers
from pipeline.settings.workspace import Workspace
from pipeline.web.app import create_app
from tests.conftest import Campaign
from tests.pages import fetch, post_form, wait_for
from tests.smtp_server import SmtpTestServer
from tests.web.test_app import ANA, SECRET, Site, running

BEN = "ben@example.com"
ONE_CLICK = (b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    """The workspace's own SQLite database, which the command line uses too."""
    opened = Store(f"sqlite:///{workspace.root / 'campaign.db'}")
    with opened.transaction() as conn:
        add(conn, ANA, Changes(first_name="Ana", tags={"back-pain"}), "cli")
        add(conn, BEN, Changes(first_name="Ben", tags={"back-pain"}), "cli")
    yield opened
    opened.close()


@pytest.fixture
def site(workspace: Workspace, store: Store) -> Iterator[Site]:
    tokens = Tokens(SECRET)
    with running(create_app(workspace, store, tokens)) as url:
        yield Site(url, store, tokens, workspace)


@contextmanager
def write_lock(store: Store) -> Iterator[sqlite3.Connection]:
    """Another process's long transaction, as an import's: SQLite's write lock, held until the end
    of the block, with a change of its own committed then."""
    database = store.engine.url.database
    assert database is not None
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE subscribers SET last_name = 'Imported' WHERE email = ?", (BEN,))
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def journal(store: Store) -> Journal:
    found = journal_for(store.engine)
    assert found is not None
    return found


def status(store: Store, address: str = ANA) -> str:
    with store.reading() as conn:
        return get(conn, address).status


def events(store: Store) -> list[tuple[str, str, str]]:
    """(address, kind, source) of every subscriber event after the first subscriptions."""
    with store.reading() as conn:
        rows = conn.execute(sa.text(
            "SELECT s.email, e.kind, e.source FROM subscriber_events e JOIN subscribers s ON s.id = e.subscriber_id "
            "WHERE e.source != 'cli' ORDER BY e.id")).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_the_journal_lives_beside_a_sqlite_database_only(tmp_path: Path) -> None:
    beside = journal_for(create_engine(f"sqlite:///{tmp_path / 'campaign.db'}"))
    assert beside is not None and beside.path == tmp_path / "campaign.db-unsubscribes"
    assert journal_for(create_engine("sqlite://")) is None
    assert journal_for(create_engine("postgresql+psycopg://campaign@localhost/clinic")) is None


def test_a_one_click_unsubscribe_during_an_import_is_answered_at_once_and_applied_when_it_ends(
        site: Site, store: Store) -> None:
    url = site.unsubscribe_url(site.token())
    with write_lock(store):
        for _ in range(2):  # mail clients that send it twice
            started = time.monotonic()
            reply = fetch(url, "POST", *ONE_CLICK)
            answered = time.monotonic() - started
            assert (reply.status, answered < 1.0) == (200, True), answered
            assert "<h1>You are unsubscribed</h1>" in reply.text
            assert f"{ANA} will get no more newsletters" in reply.text
        time.sleep(1.5)  # the serve process keeps trying, and the lock stays taken
        assert status(store) == "subscribed"
        assert [entry.source for entry in journal(store).pending()] == ["web:one-click"] * 2
        released = time.monotonic()
    wait_for(lambda: status(store) == "unsubscribed", "the journaled unsubscribe to be applied", timeout=5)
    assert time.monotonic() - released < 3
    wait_for(lambda: not journal(store).pending(), "the journal to empty")
    assert events(store) == [(ANA, "unsubscribed", "web:one-click")]
    with store.reading() as conn:
        detail = conn.execute(sa.text("SELECT detail FROM subscriber_events WHERE kind = 'unsubscribed'")).scalar()
        assert detail == '{"campaign": "back-pain"}'
        assert get(conn, BEN).last_name == "Imported"  # the other writer's work is all there


@pytest.mark.parametrize(("page", "fields", "source"), [
    ("unsubscribe", [("confirm", "yes")], "web:confirm"),
    ("preferences", [("action", "unsubscribe")], "web:preferences"),
])
def test_the_pages_buttons_do_not_wait_either(site: Site, store: Store, page: str, fields: list[tuple[str, str]],
                                              source: str) -> None:
    url = f"{site.url}/{page}/{site.token()}"
    with write_lock(store):
        started = time.monotonic()
        reply = post_form(url, fields)
        assert (reply.status, time.monotonic() - started < 1.0) == (200, True)
        assert "<h1>You are unsubscribed</h1>" in reply.text
    wait_for(lambda: status(store) == "unsubscribed", "the journaled unsubscribe to be applied", timeout=5)
    assert events(store) == [(ANA, "unsubscribed", source)]


def pending_unsubscribe(store: Store, address: str = ANA) -> Unsubscribes:
    """Ana's one-click unsubscribe made while the lock was taken, and left in the journal."""
    tokens = Tokens(SECRET)
    unsubscribes = Unsubscribes(store, tokens, page_wait=0.05)
    with store.reading() as conn:
        reader = get(conn, address)
    with write_lock(store):
        link = tokens.read(tokens.make(reader.id, address, "back-pain"))
        subscriber, still_pending = unsubscribes.unsubscribe(link, preferences.ONE_CLICK)
    assert subscriber is not None and subscriber.email == address and still_pending
    return unsubscribes


def test_a_send_started_while_the_unsubscribe_is_pending_skips_that_reader(
        campaign: Campaign, store: Store, smtp_server: SmtpTestServer) -> None:
    unsubscribes = pending_unsubscribe(store)
    assert status(store) == "subscribed" and len(journal(store).pending()) == 1
    result = campaign("--transport", smtp_server.url, "send", "back-pain", "--yes")
    assert result.exit_code == 0, result.stderr
    assert smtp_server.recipients() == {BEN: 1}
    with store.reading() as conn:
        states = dict(conn.execute(sa.select(subscribers.c.email, deliveries.c.state).select_from(
            deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id))).all())
    assert states == {ANA: "skipped", BEN: "sent"}
    assert status(store) == "unsubscribed"
    # The sender's transaction applied it; the entry goes once that is known to be committed,
    # and applying it again records nothing twice.
    assert unsubscribes.apply(1.0) and not journal(store).pending()
    assert events(store) == [(ANA, "unsubscribed", "web:one-click")]


def test_a_rolled_back_claim_loses_nothing(store: Store) -> None:
    unsubscribes = pending_unsubscribe(store)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        assert apply_pending_unsubscribes(conn) == 1
        raise RuntimeError("the sender failed before its claim committed")
    assert status(store) == "subscribed" and len(journal(store).pending()) == 1
    assert unsubscribes.apply(1.0)
    assert status(store) == "unsubscribed" and not journal(store).pending()
    assert events(store) == [(ANA, "unsubscribed", "web:one-click")]


def test_an_entry_never_undoes_a_later_subscription(store: Store) -> None:
    unsubscribes = pending_unsubscribe(store)
    with store.transaction() as conn:
        apply_pending_unsubscribes(conn)  # as a claim does: applied, and kept until known committed
    assert status(store) == "unsubscribed" and len(journal(store).pending()) == 1
    time.sleep(0.01)
    with store.transaction() as conn:
        set_status(conn, get(conn, ANA), "subscribed", "import:patients.csv")  # --resubscribe, later
    assert unsubscribes.apply(1.0)
    assert status(store) == "subscribed" and not journal(store).pending()
    assert events(store) == [(ANA, "unsubscribed", "web:one-click"), (ANA, "subscribed", "import:patients.csv")]


def test_an_erased_readers_entry_is_dropped(store: Store) -> None:
    unsubscribes = pending_unsubscribe(store)
    with store.transaction() as conn:
        erase(conn, ANA, "cli")
    assert unsubscribes.apply(1.0) and not journal(store).pending()
    assert events(store) == []


def test_many_readers_at_once_during_an_import(site: Site, store: Store) -> None:
    with store.transaction() as conn:
        readers = [add(conn, f"reader{n}@example.com", Changes(), "cli")[0] for n in range(20)]
    replies: list[tuple[int, float]] = []

    def click(reader_id: int, address: str) -> None:
        started = time.monotonic()
        reply = fetch(site.unsubscribe_url(site.tokens.make(reader_id, address)), "POST", *ONE_CLICK)
        replies.append((reply.status, time.monotonic() - started))

    with write_lock(store):
        clicks = [threading.Thread(target=click, args=(r.id, r.email)) for r in readers]
        for thread in clicks:
            thread.start()
        for thread in clicks:
            thread.join(10)
    assert len(replies) == 20 and all(code == 200 for code, _ in replies)
    # Each waits at most PAGE_WAIT (0.25 s) for the lock, side by side: far below one after another
    # (20 x 0.25 s) or waiting out the import (the 30 s busy timeout), whatever the machine's load.
    assert max(seconds for _, seconds in replies) < 2.5
    wait_for(lambda: all(status(store, r.email) == "unsubscribed" for r in readers), "every unsubscribe", timeout=5)
    assert len(events(store)) == 20
