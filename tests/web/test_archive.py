"""`campaign archive`: a real send into the Maildir, then the static site built from what it sent,
read back with feedparser, html5lib and headless Chromium."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import lxml.html
import pytest
from PIL import Image

from pipeline.audience.recipients import sample_recipient
from pipeline.audience.subscribers import Changes, add
from pipeline.audience.tokens import Tokens
from pipeline.content.merge import tag
from pipeline.db.engine import Store
from pipeline.delivery.personalise import Personaliser
from pipeline.delivery.sending import begin_send, plan
from pipeline.settings.scaffold import new_campaign
from pipeline.settings.workspace import load_workspace
from pipeline.web.archive import write_archive
from pipeline.web.archive_check import check_archive
from pipeline.web.browser import Chromium, headless_chromium
from tests.conftest import ARTICLES, Campaign, edit
from tests.content.test_images import ARTICLE, BASE, add_image, photo, with_archive

PEOPLE = [("ana.lima@example.com", "Ana"), ("ben.okafor@example.org", "Ben"), ("chloe.martin@example.net", "Chloé")]
SUBJECT = "Can acupuncture ease persistent back pain?"


def store_of(campaign: Campaign) -> Store:
    return Store(f"sqlite:///{campaign.root / 'campaign.db'}")


def subscribe(campaign: Campaign) -> None:
    store = store_of(campaign)
    with store.transaction() as conn:
        for address, name in PEOPLE:
            add(conn, address, Changes(first_name=name, tags={"back-pain"}), "test")
    store.close()


def messages(campaign: Campaign) -> list[EmailMessage]:
    folder = campaign.root / "outbox" / "new"
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in sorted(folder.iterdir())]


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def every_file(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def sent(campaign: Campaign) -> Campaign:
    """The example campaign with a local image, sent for real to three readers."""
    photo(campaign.root / "campaigns/back-pain/images/room.jpg", (2400, 1600))
    add_image(campaign.root, "![Our quiet treatment room](images/room.jpg)")
    with_archive(campaign.root)
    subscribe(campaign)
    result = campaign("send", "back-pain", "--yes")
    assert result.exit_code == 0, result.stderr
    assert len(messages(campaign)) == 3
    return campaign


def test_the_archive_shows_what_was_sent_and_nothing_of_the_readers(sent: Campaign) -> None:
    # Changed after the send: the archive shows the email as it went out, not the folder as it is now.
    edit(sent.root / ARTICLE, "Back pain that lingers for months", "Back pain that drags on for months")
    result = sent("archive", "--check")
    assert result.exit_code == 0, result.stderr
    folder = sent.root / "out" / "archive"
    assert result.stdout == f"{folder}\n"
    assert result.stderr == "archive: 1 page(s), 1 image(s), checked\n"
    files = every_file(folder)
    (image,) = [name for name in files if name.startswith("assets/")]
    assert set(files) == {"back-pain/index.html", "feed.xml", "index.html", "sitemap.xml", image}

    page = files["back-pain/index.html"].decode()
    assert "Back pain that lingers for months" in page and "drags on" not in page
    assert "Hi there," in page and "*|" not in page
    assert '<link rel="canonical" href="https://willowcreek-acupuncture.example/newsletter/back-pain/">' in page
    doc = lxml.html.document_fromstring(page)
    assert [(a.get("href"), a.text_content()) for a in doc.find_class("view-link")] == [("../", "All newsletters")]
    assert [img.get("src") for img in doc.iter("img") if "assets/" in (img.get("src") or "")] == [f"../{image}"]
    assert not doc.find_class("preheader")
    footer = doc.find_class("footer-text")[-1].text_content()
    assert "Unsubscribe" not in footer and "Manage preferences" not in footer
    assert "Subscribe" in footer  # the example workspace has a signup form: its address, for everyone

    everything = b"".join(files.values())
    for address, name in PEOPLE:
        assert address.encode() not in everything
        assert f"Hi {name}".encode() not in everything
    for personal in (b"/unsubscribe/", b"/preferences/", b"/view/", b"utm_", b"/o/", b"/c/"):
        assert personal not in everything

    # What each reader got links to files the archive has: the page, and the very same image bytes.
    for message in messages(sent):
        doc = lxml.html.document_fromstring(html_of(message))
        (link,) = [a.get("href") for a in doc.find_class("view-link")]
        # With UTM parameters, as every link to the practice's own site ([sending] utm_domains).
        assert urlsplit(link)._replace(query="").geturl() == f"{BASE}/back-pain/"
        assert (folder / urlsplit(link).path.removeprefix("/newsletter/") / "index.html").is_file()
        (src,) = [i.get("src") for i in doc.iter("img") if "/assets/" in (i.get("src") or "")]
        assert (folder / src.removeprefix(f"{BASE}/")).read_bytes() == files[image]

    feed = feedparser.parse(files["feed.xml"])
    assert not feed.bozo
    assert feed.feed.title == "Willow Creek Acupuncture newsletter"
    assert [(e.title, e.link) for e in feed.entries] == [(SUBJECT, f"{BASE}/back-pain/")]
    assert feed.entries[0].summary == "What the research says, and what to expect at your first visit."
    assert f"<loc>{BASE}/back-pain/</loc>".encode() in files["sitemap.xml"]
    index = files["index.html"].decode()
    assert 'href="back-pain/"' in index and SUBJECT in index and 'href="feed.xml"' in index


def test_the_same_sends_and_files_give_the_same_bytes(sent: Campaign, tmp_path: Path) -> None:
    assert sent("archive").exit_code == 0
    first = every_file(sent.root / "out" / "archive")
    assert sent("archive").exit_code == 0  # replacing itself
    assert every_file(sent.root / "out" / "archive") == first
    assert sent("archive", "--out", str(tmp_path / "elsewhere")).exit_code == 0
    assert every_file(tmp_path / "elsewhere") == first
    assert [p.name for p in (sent.root / "out").iterdir()] == ["archive"]  # no scratch folder left behind


def test_archive_false_keeps_a_campaign_out_and_true_brings_one_in_unsent(sent: Campaign) -> None:
    workspace = load_workspace(sent.root)
    new_campaign(workspace, "sleep", [ARTICLES / "sleep.txt"], "Sleep better this winter")
    edit(sent.root / "campaigns/sleep/settings.toml", 'template = "newsletter"', 'template = "newsletter"\narchive = true')
    new_campaign(workspace, "draft", [ARTICLES / "hydration.md"], "A draft nobody has seen")
    assert sent("archive").exit_code == 0
    folder = sent.root / "out" / "archive"
    index = (folder / "index.html").read_text()
    assert index.index('href="back-pain/"') < index.index('href="sleep/"')  # the sent one is newer
    assert (folder / "sleep/index.html").is_file() and not (folder / "draft").exists()
    assert "A draft nobody has seen" not in index

    edit(sent.root / "campaigns/back-pain/settings.toml", 'template = "newsletter"',
         'template = "newsletter"\narchive = false')
    assert sent("archive", "--check").exit_code == 0
    assert not (folder / "back-pain").exists()
    for listing in ("index.html", "feed.xml", "sitemap.xml"):
        assert "back-pain/" not in (folder / listing).read_text(), listing
    # No page, but the pictures its readers' messages show are still where those messages fetch them.
    for message in messages(sent):
        (src,) = [i.get("src") for i in lxml.html.document_fromstring(html_of(message)).iter("img")
                  if "/assets/" in (i.get("src") or "")]
        assert (folder / src.removeprefix(f"{BASE}/")).is_file()
    assert [p.name for p in (folder / "assets").iterdir()] == [src.rsplit("/", 1)[1]]


def test_a_campaign_sent_with_archive_false_has_no_page_but_its_images_are_published(campaign: Campaign) -> None:
    photo(campaign.root / "campaigns/back-pain/images/desk.png", (1500, 500), "PNG")
    add_image(campaign.root, "![The front desk](images/desk.png)")
    with_archive(campaign.root)
    edit(campaign.root / "campaigns/back-pain/settings.toml", 'template = "newsletter"',
         'template = "newsletter"\narchive = false')
    subscribe(campaign)
    assert campaign("send", "back-pain", "--yes").exit_code == 0
    (campaign.root / "campaigns/back-pain/images/desk.png").unlink()  # it no longer builds: the send's copy counts
    result = campaign("archive", "--check")
    assert result.exit_code == 0, result.stderr
    line = next(n for n, text in enumerate((campaign.root / ARTICLE).read_text().split("\n"), 1) if "desk.png" in text)
    folder = campaign.root / "campaigns" / "back-pain"
    assert result.stderr.splitlines() == [
        f"campaign: note: back-pain: the images it shows now are left out, it does not build: "
        f"{folder}/article.md:{line}: image 'images/desk.png' not found: no file {folder}/images/desk.png",
        "archive: 0 page(s), 1 image(s), checked"]
    folder = campaign.root / "out" / "archive"
    assert not (folder / "back-pain").exists()
    for message in messages(campaign):
        doc = lxml.html.document_fromstring(html_of(message))
        assert "/view/" in next(a.get("href") for a in doc.find_class("view-link"))  # the reader's own copy
        (src,) = [i.get("src") for i in doc.iter("img") if "/assets/" in (i.get("src") or "")]
        assert Image.open(folder / src.removeprefix(f"{BASE}/")).size == (1200, 400)


def test_pages_are_newest_first_by_the_day_their_send_began(campaign: Campaign) -> None:
    with_archive(campaign.root)
    workspace = load_workspace(campaign.root)
    new_campaign(workspace, "sleep", [ARTICLES / "sleep.txt"], "Sleep better this winter")
    subscribe(campaign)
    store = store_of(campaign)
    for slug, day in (("sleep", 3), ("back-pain", 20)):
        begin_send(store, plan(store, workspace, slug), slug, datetime(2026, 11, day, 17, 0, tzinfo=UTC))
    written = write_archive(store, workspace)
    store.close()
    assert (written.pages, written.images) == (2, 0)
    feed = feedparser.parse((written.folder / "feed.xml").read_bytes())
    assert [e.link for e in feed.entries] == [f"{BASE}/back-pain/", f"{BASE}/sleep/"]
    assert [e.published for e in feed.entries] == ["2026-11-20T17:00:00Z", "2026-11-03T17:00:00Z"]
    assert feed.feed.updated == "2026-11-20T17:00:00Z"
    index = (written.folder / "index.html").read_text()
    assert '<time datetime="2026-11-20">20 November 2026</time>' in index  # in the clinic's own zone
    assert index.index("back-pain/") < index.index("sleep/")


def test_an_occurrence_has_a_page_of_its_own_that_its_messages_link_to(campaign: Campaign) -> None:
    with_archive(campaign.root)
    workspace = load_workspace(campaign.root)
    subscribe(campaign)
    store = store_of(campaign)
    planned = plan(store, workspace, "back-pain")
    send = begin_send(store, planned, "back-pain", datetime(2026, 12, 1, 17, tzinfo=UTC),
                      occurrence="2026-12-01T17:00:00+00:00")
    written = write_archive(store, workspace)
    store.close()
    path = f"back-pain/{planned.content.digest[:12]}/"
    assert (written.folder / path / "index.html").is_file() and send.occurrence
    page = (written.folder / path / "index.html").read_text()
    assert 'class="view-link" href="../../"' in page and 'href="../../feed.xml"' in page
    # A recurring campaign's messages say *|archive_url|*, filled with that page's address.
    content = planned.content
    recurring = type(content)(content.subject, content.preheader,
                              content.html.replace(f"{BASE}/back-pain/", tag("archive_url")), content.text)
    personaliser = Personaliser(workspace, recurring, "back-pain", Tokens("a test secret, long enough: 4f9Kq2ZxT7"))
    assert f'href="{BASE}/back-pain/{recurring.digest[:12]}/"' in personaliser.copy(sample_recipient()).html


def test_check_finds_broken_links_invalid_html_and_a_feed_that_does_not_parse(sent: Campaign, tmp_path: Path) -> None:
    assert sent("archive").exit_code == 0
    folder = sent.root / "out" / "archive"
    assert check_archive(folder, BASE) == []
    for image in (folder / "assets").iterdir():
        image.unlink()
    (folder / "extra.html").write_text('<!doctype html><html lang="en"><head><title>x</title></head><body>'
                                       '<p><b><i>misnested</b></i></p><a href="../../etc/passwd">out</a>'
                                       '<a href="/root.html">root</a><a href="nowhere/">gone</a>'
                                       '<a href="ftp://x.example/">ftp</a></body></html>', encoding="utf-8")
    (folder / "feed.xml").write_text("<feed><entry>", encoding="utf-8")
    problems = check_archive(folder, BASE)
    assert any(p.startswith("back-pain/index.html: <img src>: ../assets/room-") and p.endswith("leads to no file")
               for p in problems)
    assert any(p.startswith("extra.html:1:") and "not valid HTML" in p for p in problems)
    assert "extra.html: <a href>: ../../etc/passwd leads out of the archive" in problems
    assert "extra.html: <a href>: /root.html depends on where the archive is served; use a relative address" in problems
    assert "extra.html: <a href>: nowhere/ leads to no file" in problems
    assert "extra.html: <a href>: ftp://x.example/ is neither in the archive nor an http(s) address" in problems
    assert any(p.startswith("feed.xml: does not parse") for p in problems)


def test_a_failed_check_leaves_the_published_archive_as_it_was(sent: Campaign) -> None:
    assert sent("archive").exit_code == 0
    folder = sent.root / "out" / "archive"
    before = every_file(folder)
    # The picture changed since the send, and the processed copy the send went out with is lost.
    photo(sent.root / "campaigns/back-pain/images/room.jpg", (900, 600))
    for stored in (sent.root / ".campaign-assets").iterdir():
        stored.unlink()
    result = sent("archive", "--check")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("campaign: note: assets/room-") and "not among the processed images" in lines[0]
    assert any("back-pain/index.html: <img src>: ../assets/room-" in line for line in lines)
    assert lines[-1] == f"campaign: error: 1 problem(s): {folder} was left as it was"
    assert every_file(folder) == before


def test_it_replaces_only_a_folder_it_wrote_and_needs_a_base_url(campaign: Campaign, tmp_path: Path) -> None:
    result = campaign("archive")
    assert result.exit_code == 1
    assert result.stderr == (f"campaign: error: {campaign.root / 'campaign.toml'}: [archive] base_url: is not set: the "
                             "archive needs the address it will be published at, such as "
                             "https://clinic.example/newsletter\n")
    with_archive(campaign.root)
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "letter.txt").write_text("precious")
    refused = campaign("archive", "--out", str(mine))
    assert refused.exit_code == 1
    assert refused.stderr == (f"campaign: error: {mine}: is not an archive that `campaign archive` wrote; choose an "
                              "empty or new folder with --out\n")
    assert [p.name for p in mine.iterdir()] == ["letter.txt"]
    assert campaign("archive", "--out", str(tmp_path / "fresh")).exit_code == 0
    assert (tmp_path / "fresh" / "index.html").is_file()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Chromium]:
    with headless_chromium() as opened:
        yield opened


def test_an_archive_page_fits_a_phone_without_scrolling_sideways(sent: Campaign, browser: Chromium) -> None:
    assert sent("archive").exit_code == 0
    folder = sent.root / "out" / "archive"
    browser.set_viewport(375, 800)
    for page in (folder / "back-pain" / "index.html", folder / "index.html"):
        browser.open(page.as_uri())
        widths = browser.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"{page} scrolls sideways at 375 px: {widths}"
        assert browser.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0 || "
                                "!i.src.startsWith('file:'))")
    browser.open((folder / "back-pain" / "index.html").as_uri())
    shown = browser.evaluate("[...document.images].filter(i => i.src.includes('/assets/'))"
                             ".map(i => [i.naturalWidth, i.getBoundingClientRect().width])")
    assert shown and shown[0][0] == 1200 and shown[0][1] <= 375  # the 2x image, scaled to the phone
    shot = browser.screenshot()
    assert shot.startswith(b"\x89PNG") and re.search(rb"IHDR\x00\x00\x01\x77", shot)  # 375 px wide


def test_without_an_atomic_exchange_the_old_archive_is_moved_aside_then_replaced(
        sent: Campaign, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import files

    assert sent("archive").exit_code == 0
    first = every_file(sent.root / "out" / "archive")
    monkeypatch.setattr(files, "_exchange", lambda one, other: False)  # a system without renameat2
    monkeypatch.setenv("CAMPAIGN_ARCHIVE_TITLE", "Health notes")
    result = sent("archive")
    assert result.exit_code == 0, result.stderr
    second = every_file(sent.root / "out" / "archive")
    assert set(second) == set(first) and b"Health notes" in second["index.html"]
    assert [p.name for p in (sent.root / "out").iterdir()] == ["archive"]
