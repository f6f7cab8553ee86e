"""Click redirects and the open pixel of `campaign serve`, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.audience.tokens import Tokens
from pipeline.clock import utcnow
from pipeline.db.engine import Store
from pipeline.delivery.sending import begin_send, plan
from pipeline.engagement.tokens import TrackingTokens
from pipeline.settings.workspace import load_workspace
from pipeline.web.tracking import GIF
from tests.conftest import Campaign
from tests.pages import fetch
from tests.tracked import (
    BASE,
    BOOK,
    BROWSER,
    Mail,
    count_events,
    outbox,
    readers,
    recorded,
    serving,
    track,
    wait_events,
)


DESK = "mailto:frontdesk@willowcreek-acupuncture.example"


@dataclass
class Tracked:
    url: str
    store: Store
    root: Path
    mails: dict[str, Mail]
    campaign: Campaign

    def hit(self, path: str, method: str = "GET", agent: str = BROWSER):  # type: ignore[no-untyped-def]
        return fetch(f"{self.url}/{path}", method, headers={"User-Agent": agent} if agent else {})

    def number(self, path: str) -> int:
        """The link number a token path names (1 the website, 2 the article, 3 booking)."""
        reading = TrackingTokens(Tokens.of_workspace(self.root).secret).read(path[2:])
        assert reading is not None
        return reading.link


@pytest.fixture
def tracked(workspace_dir: Path, db_url: str) -> Iterator[Tracked]:
    track(workspace_dir)
    article = workspace_dir / "campaigns" / "back-pain" / "article.md"
    article.write_text(article.read_text(encoding="utf-8") + f"\nOr write to [our front desk]({DESK}).\n",
                       encoding="utf-8")
    store = Store(db_url)
    readers(store, 4)
    readers(store, 1, start=10, tags={"no-tracking"})
    readers(store, 1, start=11, fields={"no_tracking": "yes"})
    campaign = Campaign(workspace_dir, db_url)
    sent = campaign("send", "back-pain", "--yes")
    assert sent.exit_code == 0, sent.stderr
    try:
        with serving(workspace_dir, store) as url:
            yield Tracked(url, store, workspace_dir, outbox(workspace_dir), campaign)
    finally:
        store.close()


def test_links_and_pixel_are_rewritten_in_both_parts_but_not_unsubscribing_or_readers_who_said_no(
        tracked: Tracked) -> None:
    mail = tracked.mails["reader0@example.com"]
    assert len(mail.clicks()) == 4 and len(set(mail.clicks())) == 3  # the website is linked twice
    assert set(mail.text_clicks()) <= set(mail.clicks()) and len(mail.text_clicks()) == 3
    assert mail.pixel() is not None
    assert f"{BASE}/unsubscribe/" in mail.html and f"{BASE}/preferences/" in mail.html
    assert f"{BASE}/unsubscribe/" in mail.text and f"{BASE}/preferences/" in mail.text
    assert f'href="{DESK}"' in mail.html and f"our front desk ({DESK.removeprefix('mailto:')})" in mail.text
    assert "We count opens and link clicks of this newsletter" in mail.html
    assert "We count opens and link clicks of this newsletter" in mail.text
    assert "utm_source" not in mail.html.split("<body")[1].split("unsubscribe/")[0]  # no address shown in clear
    for address in ("reader10@example.com", "reader11@example.com"):
        plain = tracked.mails[address]
        assert plain.clicks() == [] and plain.text_clicks() == [] and plain.pixel() is None
        assert BOOK.replace("&", "&amp;") in plain.html and BOOK in plain.text
        assert "We count opens" not in plain.html and "We count opens" not in plain.text


def test_a_click_redirects_to_its_link_with_utm_parameters_and_is_recorded(tracked: Tracked) -> None:
    mail = tracked.mails["reader1@example.com"]
    book = [p for p in mail.clicks() if tracked.number(p) == 3]
    assert len(book) == 1
    reply = tracked.hit(book[0])
    assert reply.headers["location"] == BOOK
    assert tracked.hit(book[0]).status == 302  # again, as a double click would
    assert reply.status == 302 and reply.headers["cache-control"] == "no-store"
    wait_events(tracked.store, 1)
    time.sleep(0.4)
    events = recorded(tracked.store)
    # Three hits within a second: the same hit again is the same event (two, if a second began between them).
    assert 1 <= len(events) <= 2
    assert {(e.kind, e.url, e.agent, e.machine) for e in events} == {("click", BOOK, "browser", False)}
    assert events[0].since_sent is not None and 0 <= events[0].since_sent < 120


def test_the_pixel_is_a_gif_never_cached_and_records_an_open(tracked: Tracked) -> None:
    pixel = tracked.mails["reader2@example.com"].pixel()
    assert pixel is not None
    reply = tracked.hit(pixel)
    assert (reply.status, reply.content_type, reply.body) == (200, "image/gif", GIF)
    assert reply.headers["cache-control"] == "no-store"
    (event,) = wait_events(tracked.store, 1)
    assert (event.kind, event.link, event.machine) == ("open", 0, False)


def test_forged_truncated_and_replayed_tokens_are_not_found_and_record_nothing(tracked: Tracked) -> None:
    mail = tracked.mails["reader0@example.com"]
    click, pixel = mail.clicks()[0], mail.pixel()
    assert pixel is not None
    token = click[2:]
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    codec = TrackingTokens(Tokens.of_workspace(tracked.root).secret)
    gone_send = codec.token(codec.message(999, 1, int(time.time())), 1)
    stranger = TrackingTokens("another-secret: 9a8b7c6d5e4f3g2h1i0j")
    other_secret = stranger.token(stranger.message(1, 1, int(time.time())), 1)
    unsubscribe = mail.html.split(f"{BASE}/unsubscribe/")[1].split('"')[0]
    for path in (f"c/{flipped}", f"c/{token[:-1]}", f"c/{token}x", "c/", f"c/{pixel[2:]}", f"o/{token}",
                 f"c/{unsubscribe}", f"o/{unsubscribe}", f"c/{gone_send}", f"c/{other_secret}", "o/../c/x"):
        reply = tracked.hit(path)
        assert reply.status == 404, path
        assert "location" not in {k.lower() for k in reply.headers}
    time.sleep(0.4)  # longer than the writer's interval
    assert count_events(tracked.store) == 0


def test_erasure_removes_a_readers_events_and_their_later_hits_record_nothing(tracked: Tracked) -> None:
    mail = tracked.mails["reader3@example.com"]
    assert tracked.hit(mail.clicks()[0]).status == 302
    assert wait_events(tracked.store, 1)[0].subscriber_id
    deleted = tracked.campaign("subscribers", "delete", "reader3@example.com", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert count_events(tracked.store) == 0
    assert tracked.hit(mail.clicks()[1]).status == 302  # the link still works; nobody is recorded
    assert tracked.hit(mail.pixel() or "").status == 200
    other = tracked.mails["reader0@example.com"].pixel() or ""
    assert tracked.hit(other).status == 200
    events = wait_events(tracked.store, 1)
    time.sleep(0.4)
    assert [e.subscriber_id for e in recorded(tracked.store)] == [events[0].subscriber_id]


def test_machine_hits_are_recorded_and_marked_apart(tracked: Tracked) -> None:
    first, second = tracked.mails["reader0@example.com"], tracked.mails["reader1@example.com"]
    assert tracked.hit(first.clicks()[0], "HEAD").status == 302  # a scanner's HEAD
    assert tracked.hit(first.pixel() or "", agent="Mozilla/5.0").status == 200  # Apple's privacy proxy
    assert tracked.hit(second.pixel() or "", agent="Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                                                   "(via ggpht.com GoogleImageProxy)").status == 200
    assert tracked.hit(second.clicks()[1], agent="python-requests/2.31").status == 302
    # Every link of one message within two seconds, as a security gateway clicks them.
    third = tracked.mails["reader2@example.com"]
    for path in dict.fromkeys(third.clicks()):
        assert tracked.hit(path).status == 302
    events = wait_events(tracked.store, 7)
    marked = sorted((e.kind, e.agent, e.machine) for e in events)
    assert marked == [("click", "head", True), ("click", "scanner", True), ("click", "scanner", True),
                      ("click", "scanner", True), ("click", "scanner", True), ("open", "apple-proxy", True),
                      ("open", "google-proxy", True)]


def test_two_thousand_hits_at_once_are_each_answered_and_recorded(workspace_dir: Path, db_url: str) -> None:
    track(workspace_dir)
    store = Store(db_url)
    workspace = load_workspace(workspace_dir)
    readers(store, 1000)
    send = begin_send(store, plan(store, workspace, "back-pain"), "back-pain", utcnow())
    codec = TrackingTokens(Tokens.of_workspace(workspace_dir).secret)
    with store.reading() as conn:
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM subscribers ORDER BY id")]
    heads = [codec.message(send.id, i, int(time.time())) for i in ids]
    paths = [f"o/{codec.token(h, 0)}" for h in heads] + [f"c/{codec.token(h, 3)}" for h in heads]
    try:
        with serving(workspace_dir, store) as url:
            statuses = asyncio.run(_all_at_once(url, paths))
            assert statuses == {200: 1000, 302: 1000}
            events = wait_events(store, 2000, timeout=30)
    finally:
        store.close()
    assert len(events) == 2000 and len({(e.kind, e.subscriber_id) for e in events}) == 2000


async def _all_at_once(url: str, paths: list[str]) -> dict[int, int]:
    host, port = url.removeprefix("http://").split(":")
    start = asyncio.Event()

    async def one(path: str) -> int:
        reader, writer = await asyncio.open_connection(host, int(port))
        await start.wait()
        writer.write(f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {BROWSER}\r\nConnection: close\r\n\r\n"
                     .encode())
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        await reader.read()
        writer.close()
        return status

    tasks = [asyncio.create_task(one(p)) for p in paths]
    await asyncio.sleep(0.5)  # every connection open before any request goes
    start.set()
    found: dict[int, int] = {}
    for status in await asyncio.gather(*tasks):
        found[status] = found.get(status, 0) + 1
    return found
