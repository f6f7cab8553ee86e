"""The unsubscribe and preferences pages over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner
from starlette.applications import Starlette

from pipeline.audience.subscribers import Changes, add, erase, get
from pipeline.audience.tokens import LEGACY_MAX_AGE_DAYS, Tokens
from pipeline.db.engine import Store
from pipeline.db.schema import subscriber_events
from pipeline.delivery.personalise import links as recipient_links
from pipeline.errors import ConfigError
from pipeline.settings.workspace import Workspace, load_workspace
from pipeline.web.app import HEADERS, create_app, parse_form
from pipeline.web.local_server import LocalServer
from tests.conftest import edit
from tests.pages import Reply, fetch, post_form, wait_for

SECRET = "a-test-secret: 4f9Kq2ZxT7mB0wLs8Rj3"
ANA = "ana@example.com"


@dataclass
class Site:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    store: Store
    tokens: Tokens
    workspace: Workspace

    def token(self, subscriber_id: int = 1, campaign: str | None = "back-pain", email: str = ANA) -> str:
        return self.tokens.make(subscriber_id, email, campaign)

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.url}/unsubscribe/{token}"

    def preferences_url(self, token: str) -> str:
        return f"{self.url}/preferences/{token}"

    def events(self) -> list[tuple[str, str, str | None]]:
        with self.store.reading() as conn:
            rows = conn.execute(sa.select(subscriber_events.c.kind, subscriber_events.c.source,
                                          subscriber_events.c.detail).order_by(subscriber_events.c.id))
            return [tuple(row) for row in rows]  # type: ignore[misc]

    def subscriber(self, address: str = ANA) -> tuple[str, tuple[str, ...]]:
        with self.store.reading() as conn:
            found = get(conn, address)
        return found.status, found.tags


@contextmanager
def running(app: Starlette, stop_within: float = 10) -> Iterator[str]:
    """The app served from a background thread on a free port of 127.0.0.1; its URL, without a final /.
    It must have shut down stop_within seconds after the block."""
    server = LocalServer(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "the server to start")
        yield server.url.rstrip("/")
    finally:
        server.stop()
        thread.join(stop_within)
        assert not thread.is_alive(), "the server did not shut down"


@contextmanager
def serving(workspace: Workspace, store: Store) -> Iterator[Site]:
    tokens = Tokens(SECRET)
    with running(create_app(workspace, store, tokens)) as url:
        yield Site(url, store, tokens, workspace)


@pytest.fixture
def site(workspace: Workspace, store: Store) -> Iterator[Site]:
    with store.transaction() as conn:
        add(conn, ANA, Changes(first_name="Ana", tags={"back-pain", "vip"}), "cli")
    with serving(workspace, store) as served:
        yield served


class Forms(HTMLParser):
    """The forms of a page as a browser would submit them: hidden fields and ticked boxes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"method": attributes.get("method"), "action": attributes.get("action"), "fields": [],
                               "boxes": []})
        elif tag == "input" and self.forms:
            fields = self.forms[-1]["fields"]
            boxes = self.forms[-1]["boxes"]
            assert isinstance(fields, list) and isinstance(boxes, list)
            if attributes.get("type") == "hidden":
                fields.append((attributes["name"], attributes["value"]))
            elif attributes.get("type") == "checkbox":
                boxes.append((attributes["name"], attributes["value"], "checked" in attributes))


def assert_private_page(reply: Reply, status: int) -> None:
    assert reply.status == status
    assert reply.content_type == "text/html; charset=utf-8"
    headers = {name.lower(): value for name, value in reply.headers.items()}
    for name, value in HEADERS.items():
        assert headers[name.lower()] == value
    assert headers["cache-control"] == "no-store" and headers["x-robots-tag"] == "noindex"
    # Nothing fetched from elsewhere, no scripts: the page works as it is, in any browser.
    for needle in ("<script", "src=", "<link", "url(", "@import", "http://", "https://"):
        assert needle not in reply.text


def test_get_shows_a_confirmation_and_changes_nothing(site: Site) -> None:
    token = site.token()
    for method in ("GET", "HEAD", "GET"):
        reply = fetch(site.unsubscribe_url(token), method)
        assert_private_page(reply, 200)
    page = fetch(site.unsubscribe_url(token)).text
    assert "<h1>Unsubscribe from Willow Creek Acupuncture?</h1>" in page
    assert f"<strong>{ANA}</strong>" in page
    assert '<button type="submit">Unsubscribe</button>' in page
    assert f'<a href="../preferences/{token}">' in page
    assert Forms(page).forms == [{"method": "post", "action": None, "fields": [("confirm", "yes")], "boxes": []}]
    assert site.subscriber() == ("subscribed", ("back-pain", "vip"))
    assert site.events() == [("subscribed", "cli", None)]


@pytest.mark.parametrize(("body", "content_type"), [
    (b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"),
    (b'--b1\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b1--\r\n',
     "multipart/form-data; boundary=b1"),
])
def test_one_click_post_unsubscribes_at_once_and_only_once(site: Site, body: bytes, content_type: str) -> None:
    url = site.unsubscribe_url(site.token())
    first = fetch(url, "POST", body, content_type)
    assert_private_page(first, 200)
    assert "<h1>You are unsubscribed</h1>" in first.text
    assert f"{ANA} will get no more newsletters from Willow Creek Acupuncture." in first.text
    assert site.subscriber()[0] == "unsubscribed"
    second = fetch(url, "POST", body, content_type)
    assert (second.status, second.text) == (200, first.text)
    assert site.events() == [("subscribed", "cli", None),
                             ("unsubscribed", "web:one-click", '{"campaign": "back-pain"}')]
    # Afterwards the link shows that it is done rather than asking again.
    assert "<h1>You are unsubscribed</h1>" in fetch(url).text


def test_one_click_posts_at_the_same_moment_record_one_change(site: Site) -> None:
    """Some mail clients send the POST twice; the subscriber's row is locked while it changes."""
    url = site.unsubscribe_url(site.token())
    start = threading.Barrier(6)
    replies: list[int] = []

    def click() -> None:
        start.wait(5)
        replies.append(post_form(url, [("List-Unsubscribe", "One-Click")]).status)

    clicks = [threading.Thread(target=click) for _ in range(6)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join(10)
    assert replies == [200] * 6
    assert [kind for kind, _, _ in site.events()] == ["subscribed", "unsubscribed"]


def test_the_confirmation_pages_button_unsubscribes(site: Site) -> None:
    url = site.unsubscribe_url(site.token(campaign=None))
    (form,) = Forms(fetch(url).text).forms
    fields = form["fields"]
    assert isinstance(fields, list)
    reply = post_form(url, fields)
    assert_private_page(reply, 200)
    assert "<h1>You are unsubscribed</h1>" in reply.text
    assert site.events()[-1] == ("unsubscribed", "web:confirm", '{"campaign": null}')


def test_the_links_written_into_emails_reach_the_pages(site: Site) -> None:
    """base_url has a path (/email); the pages answer under it as well, as a proxy may pass it on."""
    token = site.token()
    links = recipient_links(site.workspace, token)
    assert links["unsubscribe_url"] == f"https://willowcreek-acupuncture.example/email/unsubscribe/{token}"
    local = {name: url.replace("https://willowcreek-acupuncture.example", site.url) for name, url in links.items()}
    assert "Your email preferences" in fetch(local["preferences_url"]).text
    reply = fetch(local["unsubscribe_url"], "POST", b"List-Unsubscribe=One-Click",
                  "application/x-www-form-urlencoded")
    assert reply.status == 200 and site.subscriber()[0] == "unsubscribed"


def test_a_post_with_any_other_body_still_counts_as_one_click(site: Site) -> None:
    reply = fetch(site.unsubscribe_url(site.token()), "POST", b"", None)
    assert reply.status == 200
    assert site.events()[-1][:2] == ("unsubscribed", "web:one-click")


def expired_token(site: Site, monkeypatch: pytest.MonkeyPatch) -> str:
    """A token of the old, timestamped kind, past the age those were accepted for."""
    made_at = time.time() - (LEGACY_MAX_AGE_DAYS + 1) * 86400
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: made_at)
        return TimestampSigner(SECRET, salt="subscriber-link").sign("1.back-pain").decode()


@pytest.mark.parametrize("kind", ["garbage", "tampered", "other secret", "expired", "empty payload"])
def test_bad_links_get_a_400_that_reveals_nothing(site: Site, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    good = site.token()
    token = {
        "garbage": "not-a-token",
        "tampered": good[:-3] + ("aaa" if not good.endswith("aaa") else "bbb"),
        "other secret": Tokens("another secret").make(1, ANA, "back-pain"),
        "expired": expired_token(site, monkeypatch) if kind == "expired" else "",
        "empty payload": good.split(".")[0] + "..",
    }[kind]
    for url in (site.unsubscribe_url(token), site.preferences_url(token)):
        for reply in (fetch(url), post_form(url, [("List-Unsubscribe", "One-Click")]),
                      post_form(url, [("action", "unsubscribe")])):
            assert_private_page(reply, 400)
            assert "<h1>This link is not valid</h1>" in reply.text
            for secret in ("ana", "Ana", "back-pain", "expired", "signature"):
                assert secret not in reply.text
    assert site.subscriber() == ("subscribed", ("back-pain", "vip"))
    assert len(site.events()) == 1


def test_an_erased_readers_links_answer_without_an_address(site: Site) -> None:
    with site.store.transaction() as conn:
        erase(conn, ANA, "cli")
    token = site.token()
    for reply in (fetch(site.unsubscribe_url(token)), post_form(site.unsubscribe_url(token), [("confirm", "yes")]),
                  fetch(site.preferences_url(token)), post_form(site.preferences_url(token), [("topic", "sleep")])):
        assert_private_page(reply, 200)
        assert "<h1>You are unsubscribed</h1>" in reply.text
        assert "You will get no more newsletters from Willow Creek Acupuncture." in reply.text
        assert "ana@" not in reply.text
    assert [kind for kind, _, _ in site.events()] == ["subscribed", "erased"]


def test_an_erased_readers_links_never_reach_whoever_has_their_id_now(site: Site) -> None:
    with site.store.transaction() as conn:
        erase(conn, ANA, "cli")
        ben, _ = add(conn, "ben@example.com", Changes(first_name="Ben"), "cli")
    # Ana's own link, and a link for Ben's id made for Ana (as if her id had been given to him).
    for token in (site.token(1), site.token(ben.id)):
        for reply in (fetch(site.preferences_url(token)), post_form(site.unsubscribe_url(token), [("confirm", "yes")]),
                      fetch(site.unsubscribe_url(token), "POST", b"List-Unsubscribe=One-Click",
                            "application/x-www-form-urlencoded"),
                      post_form(site.preferences_url(token), [("topic", "sleep")])):
            assert_private_page(reply, 200)
            assert "<h1>You are unsubscribed</h1>" in reply.text
            assert "ben@" not in reply.text and "Ben" not in reply.text
    assert site.subscriber("ben@example.com") == ("subscribed", ())
    assert "ben@example.com" in fetch(site.preferences_url(site.token(ben.id, email="ben@example.com"))).text


def test_preferences_show_the_topics_with_the_readers_choices(site: Site) -> None:
    reply = fetch(site.preferences_url(site.token()))
    assert_private_page(reply, 200)
    assert "<h1>Your email preferences</h1>" in reply.text and f"<strong>{ANA}</strong>" in reply.text
    assert "<legend>Topics you would like to hear about</legend>" in reply.text
    assert ('<label><input type="checkbox" name="topic" value="back-pain" checked> Back pain and posture</label>'
            in reply.text)
    save, leave = Forms(reply.text).forms
    assert save["boxes"] == [("topic", "back-pain", True), ("topic", "sleep", False), ("topic", "pregnancy", False)]
    assert save["fields"] == [("action", "save")]
    assert leave["fields"] == [("action", "unsubscribe")]
    assert "Your choices are saved" not in reply.text
    assert site.events() == [("subscribed", "cli", None)]


def test_saving_preferences_adds_and_removes_topic_tags_only(site: Site) -> None:
    url = site.preferences_url(site.token())
    chosen = [("action", "save"), ("topic", "sleep"), ("topic", "pregnancy"), ("topic", "vip"), ("topic", "made-up")]
    reply = post_form(url, chosen)
    assert_private_page(reply, 200)
    assert '<p class="notice" role="status">Your choices are saved.</p>' in reply.text
    assert 'value="sleep" checked' in reply.text and 'value="back-pain" checked' not in reply.text
    # vip is not a topic: the form cannot add or remove it, and made-up tags are ignored.
    assert site.subscriber() == ("subscribed", ("pregnancy", "sleep", "vip"))
    detail = {"campaign": "back-pain", "added": ["pregnancy", "sleep"], "removed": ["back-pain"]}
    assert site.events()[1:] == [("topics", "web:preferences", json.dumps(detail))]
    assert post_form(url, chosen).status == 200
    assert len(site.events()) == 2  # the same choices again change nothing
    none = post_form(url, [("action", "save")])
    assert none.status == 200 and site.subscriber() == ("subscribed", ("vip",))
    assert site.events()[-1][0] == "topics"


def test_leaving_all_from_the_preferences_page_unsubscribes(site: Site) -> None:
    url = site.preferences_url(site.token(campaign="sleep"))
    reply = post_form(url, [("action", "unsubscribe")])
    assert_private_page(reply, 200)
    assert "<h1>You are unsubscribed</h1>" in reply.text
    assert site.subscriber() == ("unsubscribed", ("back-pain", "vip"))
    assert site.events()[1:] == [("unsubscribed", "web:preferences", '{"campaign": "sleep"}')]
    # No topics are offered to someone who left, and saving changes nothing.
    again = fetch(url)
    assert "<h1>You are unsubscribed</h1>" in again.text and 'type="checkbox"' not in again.text
    post_form(url, [("action", "save"), ("topic", "sleep")])
    assert site.subscriber() == ("unsubscribed", ("back-pain", "vip"))
    assert len(site.events()) == 2


def test_a_bounced_reader_stays_bounced(site: Site) -> None:
    from pipeline.audience.subscribers import set_status

    with site.store.transaction() as conn:
        set_status(conn, get(conn, ANA), "bounced", "bounces:x")
    reply = post_form(site.unsubscribe_url(site.token()), [("List-Unsubscribe", "One-Click")])
    assert reply.status == 200 and "<h1>You are unsubscribed</h1>" in reply.text
    assert site.subscriber()[0] == "bounced" and len(site.events()) == 2


def test_other_paths_methods_and_oversized_bodies(site: Site) -> None:
    url = site.unsubscribe_url(site.token())
    missing = fetch(f"{site.url}/unsubscribe/")
    assert_private_page(missing, 404)
    assert "<h1>There is no page here</h1>" in missing.text
    assert fetch(f"{site.url}/").status == 404
    wrong = fetch(url, "PUT", b"x", "text/plain")
    assert_private_page(wrong, 405)
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    huge = fetch(url, "POST", b"List-Unsubscribe=One-Click&x=" + b"y" * 70_000, "application/x-www-form-urlencoded")
    assert_private_page(huge, 413)
    assert site.subscriber()[0] == "subscribed"


def test_output_is_escaped_and_branded(workspace_dir: Path, store: Store) -> None:
    config = workspace_dir / "campaign.toml"
    edit(config, 'name = "Willow Creek Acupuncture"', 'name = "Willow & <Creek>"')
    edit(config, 'sleep = "Sleep and stress"', 'sleep = "Sleep <b>&</b> stress"')
    edit(config, 'primary_color = "#1f6f5c"', 'primary_color = "#123456"')
    edit(config, 'font_family = "Helvetica, Arial, sans-serif"', "font_family = \"'Open Sans', sans-serif\"")
    with store.transaction() as conn:
        add(conn, "o'brien+news@example.com", Changes(), "cli")
    with serving(load_workspace(workspace_dir), store) as served:
        page = fetch(served.preferences_url(served.token(email="o'brien+news@example.com"))).text
    assert "<title>Your email preferences · Willow &amp; &lt;Creek&gt;</title>" in page
    assert "Sleep &lt;b&gt;&amp;&lt;/b&gt; stress" in page
    assert "<strong>o&#39;brien+news@example.com</strong>" in page
    assert "background: #123456;" in page and "font: 17px/1.55 'Open Sans', sans-serif;" in page


def test_the_factory_reads_the_workspace_database_and_secret_from_the_environment(
        workspace_dir: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_WORKSPACE", str(workspace_dir))
    monkeypatch.setenv("CAMPAIGN_DB", db_url)
    monkeypatch.setenv("CAMPAIGN_SECRET", SECRET)
    store = Store(db_url)
    with store.transaction() as conn:
        add(conn, ANA, Changes(), "cli")
    with running(create_app()) as url:
        reply = fetch(f"{url}/email/unsubscribe/{Tokens(SECRET).make(1, ANA)}", "POST",
                      b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    assert reply.status == 200
    with store.reading() as conn:
        assert get(conn, ANA).status == "unsubscribed"
    store.close()


def test_form_bodies_are_read_whatever_their_encoding() -> None:
    assert parse_form("application/x-www-form-urlencoded", b"topic=a&topic=b%20c&action=save") == {
        "topic": ["a", "b c"], "action": ["save"]}
    multipart = (b'--xyz\r\nContent-Disposition: form-data; name="topic"\r\n\r\nsleep\r\n'
                 b'--xyz\r\nContent-Disposition: form-data; name="topic"\r\n\r\nback-pain\r\n--xyz--\r\n')
    assert parse_form("multipart/form-data; boundary=xyz", multipart) == {"topic": ["sleep", "back-pain"]}
    assert parse_form("multipart/form-data; boundary=xyz", b"garbage") == {}
    assert parse_form("text/plain", b"List-Unsubscribe=One-Click") == {"List-Unsubscribe": ["One-Click"]}
    assert parse_form("", b"\xff\xfe=\x00") == {"\ufffd\ufffd": ["\x00"]}


def test_topics_come_from_campaign_toml(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dict(load_workspace(workspace_dir).topics) == {
        "back-pain": "Back pain and posture", "sleep": "Sleep and stress", "pregnancy": "Acupuncture in pregnancy"}
    monkeypatch.setenv("CAMPAIGN_TOPICS_SLEEP", "Sleep")
    assert load_workspace(workspace_dir).topics["sleep"] == "Sleep"
    edit(workspace_dir / "campaign.toml", 'sleep = "Sleep and stress"', '"sleep,rest" = "Sleep and stress"')
    with pytest.raises(ConfigError, match=r"campaign.toml: \[topics\] sleep,rest: topic tags are 1 to 100 "
                                          r"characters, without commas or surrounding spaces$"):
        load_workspace(workspace_dir)


def test_a_failing_database_gets_a_plain_500_page(workspace: Workspace, tmp_path: Path) -> None:
    broken = Store(f"sqlite:///{tmp_path / 'gone.db'}")
    broken.engine.dispose()
    (tmp_path / "gone.db").unlink()  # the next connection opens an empty file: no tables
    with serving(workspace, broken) as served:
        reply = fetch(served.unsubscribe_url(served.token()))
    assert_private_page(reply, 500)
    assert "<h1>Something went wrong on our side</h1>" in reply.text
    assert "Traceback" not in reply.text and "subscribers" not in reply.text
    broken.close()
