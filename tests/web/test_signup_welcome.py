"""The welcome message: each newly confirmed subscriber gets [signup] welcome once, sent by the tick
through the same deliveries as every campaign, with its content frozen per send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.audience.subscribers import Changes, add, find, set_status
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.db.schema import deliveries
from pipeline.delivery import welcome
from pipeline.delivery.frozen import frozen
from pipeline.delivery.sends import all_sends, history
from pipeline.delivery.transports import open_transport
from pipeline.settings.workspace import Workspace, load_workspace
from pipeline.timing.tick import tick
from tests.conftest import ARTICLES, Campaign, edit
from tests.pages import post_form
from tests.smtp_server import SmtpTestServer
from tests.web.signup_site import Served, serving

WELCOME = "Welcome to Willow Creek"


@pytest.fixture
def workspace_with_welcome(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    made = Campaign(workspace_dir)("new", "welcome", "--article", str(ARTICLES / "hydration.md"), "--subject", WELCOME)
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("CAMPAIGN_SIGNUP_WELCOME", "welcome")
    return load_workspace(workspace_dir)


@pytest.fixture
def served(workspace_with_welcome: Workspace, store: Store, smtp_server: SmtpTestServer) -> Iterator[Served]:
    with serving(workspace_with_welcome, store, smtp_server) as site:
        yield site


def sign_up_and_confirm(site: Served, email: str) -> None:
    before = len(site.smtp.received)
    site.sign_up(email, email.split("@")[0].title())
    mail = next(m for m in site.mails(before + 1)[before:] if m.recipients == [email])
    assert post_form(site.link(mail), [("confirm", "yes")]).status == 200


def run_tick(site: Served) -> None:
    _, connect = open_transport(site.smtp.url, site.workspace.root)
    report = tick(site.store, site.workspace, connect, utcnow)
    assert not report.failed, report.outcomes


def welcomes(site: Served) -> list[tuple[str, str]]:
    """(recipient, subject) of every welcome message the SMTP server received."""
    return [(m.recipients[0], m.message["Subject"]) for m in site.smtp.received
            if "confirm" not in m.message["Subject"]]


def test_each_confirmed_subscriber_is_welcomed_once_by_the_tick(served: Served) -> None:
    sign_up_and_confirm(served, "ana@example.com")
    sign_up_and_confirm(served, "ben@example.com")
    served.sign_up("cleo@example.com")  # never confirms
    served.mails(3)
    with served.store.reading() as conn:
        (send,) = welcome.sends_of(conn, "welcome")
        assert send.state == "sending" and send.occurrence.startswith("welcome:")
        queued = conn.execute(sa.select(deliveries.c.state, deliveries.c.due_at)
                              .where(deliveries.c.send_id == send.id)).all()
    assert [state for state, _ in queued] == ["queued", "queued"]
    assert welcomes(served) == []  # serve queues; the tick sends
    run_tick(served)
    assert sorted(welcomes(served)) == [("ana@example.com", WELCOME), ("ben@example.com", WELCOME)]
    message = next(m for m in served.smtp.received if m.recipients == ["ana@example.com"] and
                   m.message["Subject"] == WELCOME).message
    assert message["List-Unsubscribe"] is not None  # a newsletter like any other
    run_tick(served)
    # Confirming again (the button twice, the link again) welcomes nobody twice.
    for mail in served.smtp.received:
        if "confirm" in mail.message["Subject"] and mail.recipients == ["ana@example.com"]:
            assert post_form(served.link(mail), [("confirm", "yes")]).status == 200
    run_tick(served)
    assert len(welcomes(served)) == 2
    with served.store.reading() as conn:
        (send,) = welcome.sends_of(conn, "welcome")
        assert send.state == "sent"
    # A later subscriber reopens the finished send for just them.
    sign_up_and_confirm(served, "dan@example.com")
    run_tick(served)
    assert welcomes(served)[-1] == ("dan@example.com", WELCOME) and len(welcomes(served)) == 3
    with served.store.reading() as conn:
        events = [e.event for e in history(conn, welcome.sends_of(conn, "welcome")[0].id)]
    assert events == ["started", "finished", "reopened", "finished"]


def test_an_edited_welcome_starts_a_new_send_and_the_queued_keep_their_copy(served: Served) -> None:
    sign_up_and_confirm(served, "ana@example.com")
    settings = served.workspace.campaign_dir("welcome") / "settings.toml"
    edit(settings, f'subject = "{WELCOME}"', 'subject = "Welcome, and a word about water"')
    sign_up_and_confirm(served, "ben@example.com")
    with served.store.reading() as conn:
        first, second = welcome.sends_of(conn, "welcome")
        assert frozen(conn, first.id).subject == WELCOME  # type: ignore[union-attr]
        assert frozen(conn, second.id).subject == "Welcome, and a word about water"  # type: ignore[union-attr]
    run_tick(served)
    assert sorted(welcomes(served)) == [("ana@example.com", WELCOME),
                                        ("ben@example.com", "Welcome, and a word about water")]


def test_a_welcome_that_no_longer_builds_never_blocks_a_confirmation(served: Served) -> None:
    sign_up_and_confirm(served, "ana@example.com")
    for article in served.workspace.campaign_dir("welcome").glob("*.md"):
        article.unlink()
    sign_up_and_confirm(served, "ben@example.com")  # joins the latest welcome send
    assert served.status("ben@example.com") == "subscribed"
    run_tick(served)
    assert sorted(welcomes(served)) == [("ana@example.com", WELCOME), ("ben@example.com", WELCOME)]


def test_someone_who_leaves_before_the_tick_is_not_welcomed(served: Served) -> None:
    sign_up_and_confirm(served, "ana@example.com")
    with served.store.transaction() as conn:
        found = find(conn, "ana@example.com")
        assert found is not None
        set_status(conn, found, "unsubscribed", "cli")
    run_tick(served)
    assert welcomes(served) == []


def test_subscribers_who_came_another_way_get_no_welcome(served: Served) -> None:
    with served.store.transaction() as conn:
        add(conn, "imported@example.com", Changes(), "import:patients.csv")
    run_tick(served)
    with served.store.reading() as conn:
        assert welcome.sends_of(conn, "welcome") == []


def test_single_opt_in_subscribes_at_once_and_queues_the_welcome(workspace_with_welcome: Workspace, store: Store,
                                                                  smtp_server: SmtpTestServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SIGNUP_DOUBLE_OPT_IN", "false")
    workspace = load_workspace(workspace_with_welcome.root)
    with serving(workspace, store, smtp_server) as site:
        reply = site.sign_up("ana@example.com", "Ana")
        assert reply.status == 200 and "<h1>Thank you for signing up</h1>" in reply.text
        assert site.status("ana@example.com") == "subscribed"
        (record,) = site.consents("ana@example.com")
        assert record.method == "single-opt-in" and record.confirmed_at is None
        assert site.history("ana@example.com") == [("pending", "web:signup"), ("subscribed", "web:signup")]
        site.sign_up("ana@example.com", "Ana")  # again: already subscribed, nothing changes
        assert len(site.history("ana@example.com")) == 2
        run_tick(site)
        assert welcomes(site) == [("ana@example.com", WELCOME)]  # and no confirmation email at all
        assert len(site.smtp.received) == 1


def test_the_tick_stays_idle_until_a_welcome_is_due(served: Served) -> None:
    """cron's quick check (timing.idle) sees a queued welcome, and nothing once it is sent."""
    from pipeline.timing.idle import nothing_due

    if served.store.engine.dialect.name != "sqlite":
        pytest.skip("the quick check reads SQLite only")
    url = served.store.engine.url.render_as_string()
    assert nothing_due(served.workspace.root, url, utcnow())
    sign_up_and_confirm(served, "ana@example.com")
    assert not nothing_due(served.workspace.root, url, utcnow())
    run_tick(served)
    assert nothing_due(served.workspace.root, url, utcnow())
    with served.store.reading() as conn:
        assert [(s.campaign, s.occurrence[:8], s.state) for s in all_sends(conn)] == [("welcome", "welcome:", "sent")]
