"""The preview against a real server on 127.0.0.1: every endpoint over HTTP, live reload, errors, Chromium."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from pipeline.audience.recipients import Recipient, sample_recipient
from pipeline.content.build import build_campaign
from pipeline.errors import NotFoundError
from pipeline.settings.workspace import Workspace
from pipeline.web.browser import Chromium, headless_chromium
from pipeline.web.preview import Preview, find_recipient, force_dark, message_headers
from pipeline.web.preview_server import PreviewServer
from tests.conftest import edit
from tests.pages import EventStream, fetch, wait_for

SLUG = "back-pain"
FOOTER = Path("templates/partials/footer.mjml.j2")
HEADER = Path("templates/partials/header.mjml.j2")
ARTICLE = Path("campaigns/back-pain/article.md")
SETTINGS = Path("campaigns/back-pain/settings.toml")
JINJA_ERROR = "templates/partials/footer.mjml.j2:12: No filter named 'shout'."
MJML_ERROR = ("templates/partials/header.mjml.j2: MJML does not compile at line 39, column 5 of the generated "
              "email.mjml: unexpected end of stream in root template (<mj-text> cannot be inside <mj-text>, "
              "whose content is HTML); near '<mj-text css-class=\"footer-text\" align=\"center\" font-size=\"1'")
SAMPLE_STATUS = [{"label": "sample", "email": "alex.rivera@example.com"}]


@contextmanager
def serving(preview: Preview, recipient: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """The preview served from a background thread on a free port; it must stop when asked.
    Its URL, as the command prints it: http://127.0.0.1:PORT/p/SECRET/"""
    server = PreviewServer(preview, host, 0, recipient)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server to start")
    try:
        yield server.url
    finally:
        server.stop()
        thread.join(10)
        assert not thread.is_alive(), "the server did not shut down"


@dataclass
class Live:
    """A served preview with its event stream open and the first build's event read."""

    preview: Preview
    url: str
    events: EventStream
    first: dict[str, Any]

    def next_version(self) -> dict[str, Any]:
        """The next build's event, which must come well within the second live reload promises."""
        name, data = self.events.next(timeout=3)
        assert name == "build"
        return data


@contextmanager
def live(workspace: Workspace) -> Iterator[Live]:
    preview = Preview(workspace, SLUG)
    with serving(preview) as url, EventStream(url) as events:
        yield Live(preview, url, events, events.next()[1])


def break_footer(root: Path) -> None:
    edit(root / FOOTER, "<strong>{{ brand.name }}</strong>", "<strong>{{ brand.name | shout }}</strong>")


def mend_footer(root: Path) -> None:
    edit(root / FOOTER, "<strong>{{ brand.name | shout }}</strong>", "<strong>{{ brand.name }}</strong>")


def parse(message: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def preview_as(workspace: Workspace, recipient: Recipient) -> Preview:
    return Preview(workspace, SLUG, lambda: [recipient])


def sample_with(**values: str) -> Recipient:
    """The sample reader with some values changed, named as the values name them."""
    sample = sample_recipient()
    merged = {**sample.values, **values}
    return Recipient(None, sample.email, f"{merged['first_name']} {merged['last_name']}", merged)


# The message behind the Headers and Raw MIME tabs.

def test_preview_message_is_the_message_send_builds(workspace: Workspace) -> None:
    preview = preview_as(workspace, sample_recipient())
    before = datetime.now(timezone.utc).replace(microsecond=0)
    raw = preview.state.message(0)
    msg = parse(raw)
    assert [(k, str(v).strip()) for k, v in msg.items() if k not in ("Date", "Content-Type", "Message-ID")] == [
        ("From", '"Dr. Mei Lin at Willow Creek Acupuncture" <newsletter@willowcreek-acupuncture.example>'),
        ("Reply-To", "frontdesk@willowcreek-acupuncture.example"),
        ("MIME-Version", "1.0"),
        ("List-Id", "Willow Creek health newsletter <newsletter.willowcreek-acupuncture.example>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Precedence", "bulk"),
        ("To", "Alex Rivera <alex.rivera@example.com>"),
        ("Subject", "Can acupuncture ease persistent back pain?"),
        ("List-Unsubscribe", "<https://willowcreek-acupuncture.example/email/unsubscribe/sample>, "
                             "<mailto:unsubscribe@willowcreek-acupuncture.example?subject=unsubscribe%20sample>"),
    ]
    assert msg["Message-ID"].startswith("<back-pain.0.0.")
    assert before <= msg["Date"].datetime <= datetime.now(timezone.utc)
    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.iter_parts()
    copy = preview.state.copy(0)
    assert (text_part.get_content_type(), text_part.get_content_charset()) == ("text/plain", "utf-8")
    assert (html_part.get_content_type(), html_part.get_content_charset()) == ("text/html", "utf-8")
    assert "Hi Alex," in text_part.get_content() and "Hi Alex," in html_part.get_content()
    # Links to the practice's own site carry UTM parameters, as in the message sent.
    assert "https://willowcreek-acupuncture.example/book?utm_source=newsletter&utm_medium=email" \
           "&utm_campaign=back-pain" in text_part.get_content()
    assert (copy.text, copy.html) == (text_part.get_content(), html_part.get_content())
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_preview_message_keeps_subscriber_data_on_one_line_and_fills_the_subject(workspace: Workspace) -> None:
    edit(workspace.root / SETTINGS, 'subject = "Can acupuncture ease persistent back pain?"',
         'subject = "*|FNAME|*, can acupuncture help?"')
    msg = parse(preview_as(workspace, sample_with(first_name="Zoë\r\nBcc: victim@example.com", last_name="Ng"))
                .state.message(0))
    assert msg["To"] == '"Zoë Bcc: victim@example.com Ng" <alex.rivera@example.com>'
    assert msg["Subject"] == "Zoë Bcc: victim@example.com, can acupuncture help?"
    assert msg["Bcc"] is None


def test_message_headers_are_decoded_one_a_line(workspace: Workspace) -> None:
    raw = preview_as(workspace, sample_with(first_name="Zoë", last_name="Müller")).state.message(0)
    assert b"\r\nTo: =?utf-8?b?" in raw  # encoded in the message itself
    lines = message_headers(raw).splitlines()
    assert "To: Zoë Müller <alex.rivera@example.com>" in lines
    assert [line.split(":")[0] for line in lines] == [
        "Date", "From", "Reply-To", "MIME-Version", "List-Id", "List-Unsubscribe-Post", "Precedence", "Content-Type",
        "To", "Subject", "Message-ID", "List-Unsubscribe"]


def test_force_dark_applies_the_emails_own_dark_rules(workspace: Workspace) -> None:
    html = build_campaign(workspace, SLUG).rendered.html
    dark = force_dark(html)
    assert "@media (prefers-color-scheme: dark)" in html
    assert "prefers-color-scheme" not in dark
    assert "@media (min-width: 0px) {" in dark
    assert '<meta name="color-scheme" content="dark" />' in dark
    assert dark.count("<style>:root { color-scheme: dark !important; }</style></head>") == 1
    assert force_dark("<p>no head</p>") == "<style>:root { color-scheme: dark !important; }</style><p>no head</p>"


def test_recipients_are_found_by_label_or_address(workspace: Workspace) -> None:
    people = [sample_recipient(), Recipient(7, "Zoe@Example.com", "Zoë", {"email": "Zoe@Example.com"})]
    assert find_recipient(people, "sample") == 0
    assert find_recipient(people, "zoe@example.com") == 1
    with pytest.raises(NotFoundError) as caught:
        find_recipient(people, "nobody@example.com")
    assert str(caught.value) == ("no recipient 'nobody@example.com' to preview as (known: "
                                 "sample <alex.rivera@example.com>, Zoë <Zoe@Example.com> <Zoe@Example.com>)")


def test_an_unknown_campaign_fails_at_once(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError) as caught:
        Preview(workspace, "ghost")
    assert str(caught.value) == f"no campaign 'ghost' in {workspace.campaigns_dir} (known: back-pain)"


# Every endpoint, over real HTTP.

def test_every_endpoint_over_http(workspace: Workspace) -> None:
    edit(workspace.root / SETTINGS, 'subject = "Can acupuncture ease persistent back pain?"', 'subject = "Back pain"')
    preview = Preview(workspace, SLUG)
    copy = preview.state.copy(0)
    html, text = copy.html, copy.text
    with serving(preview) as url:
        page = fetch(url)
        assert (page.status, page.content_type) == (200, "text/html; charset=utf-8")
        assert page.headers["cache-control"] == "no-store"
        assert "<title>Campaign preview</title>" in page.text
        for needle in ('id="desktop"', 'id="mobile"', 'id="dark"', 'data-tab="text"', 'data-tab="headers"',
                       'data-tab="mime"', 'data-tab="lint"', 'id="recipient"', 'new EventSource("events")'):
            assert needle in page.text

        status = fetch(url + "status")
        assert (status.status, status.content_type) == (200, "application/json")
        assert status.json() == {"version": 1, "subject": "Back pain", "error": None,
                                 "recipients": SAMPLE_STATUS, "recipient": 0, "lint": {"errors": 0, "warnings": 1}}

        copy = fetch(url + "email.html?r=0")
        assert (copy.status, copy.content_type, copy.text) == (200, "text/html; charset=utf-8", html)
        dark = fetch(url + "email-dark.html")
        assert (dark.status, dark.text) == (200, force_dark(html))
        plain = fetch(url + "email.txt")
        assert (plain.status, plain.content_type, plain.text) == (200, "text/plain; charset=utf-8", text)

        headers = fetch(url + "headers.txt")
        assert (headers.status, headers.content_type) == (200, "text/plain; charset=utf-8")
        lines = headers.text.splitlines()
        assert re.fullmatch(r"Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", lines[0])
        assert lines[1:3] == [
            'From: "Dr. Mei Lin at Willow Creek Acupuncture" <newsletter@willowcreek-acupuncture.example>',
            "Reply-To: frontdesk@willowcreek-acupuncture.example",
        ]
        assert lines[8:10] == ["To: Alex Rivera <alex.rivera@example.com>", "Subject: Back pain"]
        assert lines[5] == "List-Unsubscribe-Post: List-Unsubscribe=One-Click"

        raw = fetch(url + "message.eml")
        assert (raw.status, raw.content_type) == (200, "message/rfc822")
        msg = parse(raw.body)
        assert msg["Subject"] == "Back pain"
        sent_text, sent_html = (p.get_content() for p in msg.iter_parts())
        assert sent_text.split("Read the full article")[0] == text.split("Read the full article")[0]
        assert "Hi Alex," in sent_html

        lint = fetch(url + "lint.json")
        assert (lint.status, lint.content_type) == (200, "application/json")
        assert lint.json() == {"findings": [{
            "level": "warning", "code": "subject-length", "where": "settings.toml",
            "message": "subject is 9 characters; keep it between 10 and 78", "target": None}]}
        assert [str(f) for f in preview.state.built()[0].findings] == [
            "warning: settings.toml: subject is 9 characters; keep it between 10 and 78 [subject-length]"]

        missing = fetch(url + "email.html?r=1")
        assert (missing.status, missing.text) == (404, "no recipient number 1 (there are 1)")
        bad = fetch(url + "email.txt?r=first")
        assert (bad.status, bad.text) == (400, "r must be a recipient number")

        with EventStream(url) as events:
            assert events.response.status == 200
            assert events.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
            assert events.next() == ("build", status.json())
            assert events.retry == 1000


def test_the_recipient_picker_serves_each_recipient_from_a_pluggable_list(workspace: Workspace) -> None:
    people = [sample_recipient(),
              Recipient(5, "zoe@example.com", "Zoë Ng", {"first_name": "Zoë", "last_name": "Ng", "email": "zoe@example.com"})]
    preview = Preview(workspace, SLUG, recipients=lambda: people)
    token = preview.tokens.make(5, "zoe@example.com", SLUG)
    with serving(preview, recipient=find_recipient(people, "zoe@example.com")) as url:
        status = fetch(url + "status").json()
        assert status["recipients"] == [*SAMPLE_STATUS, {"label": "Zoë Ng <zoe@example.com>", "email": "zoe@example.com"}]
        assert status["recipient"] == 1
        assert "Hi Zoë," in fetch(url + "email.html").text
        assert "Hi Alex," in fetch(url + "email.html?r=0").text
        assert "Hi Zoë," in fetch(url + "email.txt").text
        headers = fetch(url + "headers.txt").text
        assert "To: Zoë Ng <zoe@example.com>\n" in headers
        assert f"List-Unsubscribe: <https://willowcreek-acupuncture.example/email/unsubscribe/{token}>, " in headers


# Live reload: watched files, one rebuild per batch, errors shown and recovered from.

def test_editing_the_article_pushes_a_rebuild_over_the_event_stream(workspace: Workspace) -> None:
    with live(workspace) as served:
        assert (served.first["version"], served.first["error"]) == (1, None)
        edit(workspace.root / ARTICLE, "Back pain that lingers", "Stubborn back pain that lingers")
        started = time.monotonic()
        data = served.next_version()
        assert (data["version"], data["error"]) == (2, None)
        assert time.monotonic() - started < 1.0
        assert "Stubborn back pain that lingers" in fetch(served.url + "email.txt").text


def test_a_batch_of_changes_rebuilds_once(workspace: Workspace) -> None:
    root = workspace.root
    with live(workspace) as served:
        edit(root / SETTINGS, 'subject = "Can acupuncture ease persistent back pain?"',
             'subject = "Acupuncture and back pain"')
        edit(root / ARTICLE, "Back pain that lingers", "Stubborn back pain that lingers")
        edit(root / FOOTER, "Manage preferences", "Your preferences")
        data = served.next_version()
        assert (data["version"], data["subject"]) == (2, "Acupuncture and back pain")
        with pytest.raises(TimeoutError):
            served.events.next(timeout=0.5)  # well past watchfiles' 50 ms of quiet that closes a batch
        assert served.preview.state.version == 2
        assert "Stubborn back pain that lingers" in fetch(served.url + "email.txt").text
        assert "Your preferences" in fetch(served.url + "email.html").text


def test_files_the_email_is_not_made_from_do_not_rebuild(workspace: Workspace) -> None:
    root = workspace.root
    with live(workspace) as served:
        (root / "campaigns" / SLUG / "notes.txt").write_text("ideas for next month\n")
        (root / "templates" / ".newsletter.mjml.j2.swp").write_bytes(b"editor scratch")
        with pytest.raises(TimeoutError):
            served.events.next(timeout=0.5)
        edit(root / ARTICLE, "Back pain that lingers", "Stubborn back pain that lingers")
        assert served.next_version()["version"] == 2


def test_an_article_moved_to_another_folder_is_watched_there(workspace: Workspace) -> None:
    moved = workspace.root / "shared" / "back-pain.md"  # another folder of the workspace
    moved.parent.mkdir()
    moved.write_text((workspace.root / ARTICLE).read_text(encoding="utf-8"), encoding="utf-8")
    with live(workspace) as served:
        edit(workspace.root / SETTINGS, 'articles = ["article.md"]', f'articles = ["{moved}"]')
        assert served.next_version()["version"] == 2
        edit(moved, "Back pain that lingers", "Shared back pain that lingers")
        assert served.next_version()["version"] == 3
        assert "Shared back pain that lingers" in fetch(served.url + "email.txt").text


def test_a_template_error_shows_instead_of_the_email_and_fixing_it_recovers(workspace: Workspace) -> None:
    with live(workspace) as served:
        url = served.url
        break_footer(workspace.root)
        data = served.next_version()
        assert (data["version"], data["error"], data["subject"]) == (2, JINJA_ERROR, None)
        assert fetch(url + "status").json()["error"] == JINJA_ERROR
        page = fetch(url + "email.html")
        assert (page.status, page.content_type) == (503, "text/html; charset=utf-8")
        assert '<pre class="error" style="white-space:pre-wrap">templates/partials/footer.mjml.j2:12: ' \
               "No filter named &#x27;shout&#x27;.</pre>" in page.text
        for path in ("email.txt", "headers.txt", "message.eml", "lint.json"):
            failed = fetch(url + path)
            assert (failed.status, failed.text) == (503, JINJA_ERROR), path
        assert fetch(url).status == 200  # the page itself still loads, to show the error

        mend_footer(workspace.root)
        data = served.next_version()
        assert (data["version"], data["error"]) == (3, None)
        assert fetch(url + "email.html").status == 200


def test_a_campaign_that_does_not_build_at_start_is_served_with_its_error(workspace: Workspace) -> None:
    break_footer(workspace.root)
    with live(workspace) as served:
        assert served.first["error"] == JINJA_ERROR
        assert fetch(served.url + "status").json()["recipients"] == SAMPLE_STATUS
        mend_footer(workspace.root)
        assert served.next_version()["error"] is None


def test_an_article_that_is_broken_at_start_is_watched_until_it_is_fixed(workspace: Workspace) -> None:
    article = workspace.root / ARTICLE
    text = article.read_text(encoding="utf-8")
    article.write_text("", encoding="utf-8")
    with live(workspace) as served:
        assert served.first["error"] == f"{article}: is empty"
        article.write_text(text, encoding="utf-8")
        assert served.next_version()["error"] is None


def test_stopping_ends_open_event_streams(workspace: Workspace) -> None:
    preview = Preview(workspace, SLUG)
    with serving(preview) as url:
        events = EventStream(url)
        events.next()
    # serving() has checked that the server stopped; the stream it held open was ended, not cut.
    with pytest.raises(EOFError):
        events.next(timeout=2)
    events.close()


# In headless Chromium.

@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Chromium]:
    with headless_chromium() as opened:
        opened.set_viewport(1280, 900)
        yield opened


def frame_script(browser: Chromium, frame: str, expression: str) -> Any:
    """Evaluate expression with `doc` bound to the document inside one of the page's frames."""
    return browser.evaluate(
        "(() => {"
        f"const frame = document.getElementById({frame!r});"
        "const doc = frame.contentDocument;"
        # Parsed is enough: waiting for the email's remote images would tie the tests to the network.
        "if (!doc || !doc.body || doc.readyState === 'loading') return null;"
        f"return {expression};"
        "})()")


def click(browser: Chromium, selector: str) -> None:
    browser.evaluate(f"document.querySelector({selector!r}).click()")


def shown(browser: Chromium, element_id: str) -> bool:
    """Whether the element is rendered: neither it nor anything around it hidden."""
    return bool(browser.evaluate(
        f"document.getElementById({element_id!r}).checkVisibility({{visibilityProperty: true}})"))


def text_of(browser: Chromium, element_id: str) -> str:
    """The element's text as a reader sees it."""
    return str(browser.evaluate(f"document.getElementById({element_id!r}).innerText"))


def open_page(browser: Chromium, url: str) -> None:
    browser.open(url)
    wait_for(lambda: browser.evaluate("document.body.dataset.version"), "the page to load")
    for frame in ("desktop", "mobile"):
        wait_for(lambda frame=frame: frame_script(browser, frame, "doc.body.innerText.includes('Hi Alex,')"),
                 f"the {frame} frame to show the email")


def test_the_mobile_frame_is_375_px_without_horizontal_scroll(workspace: Workspace, browser: Chromium) -> None:
    with serving(Preview(workspace, SLUG)) as url:
        open_page(browser, url)
        # Fitted to the email once it has loaded, rather than a box that scrolls on its own.
        wait_for(lambda: (frame_script(browser, "mobile", "frame.clientHeight") or 0) > 1500,
                 "the frame to fit the email")
        width, scroll_width, client_width = frame_script(
            browser, "mobile", "[frame.clientWidth, doc.documentElement.scrollWidth, doc.documentElement.clientWidth]")
        assert (width, client_width) == (375, 375)
        assert scroll_width <= client_width
        assert frame_script(browser, "desktop", "frame.clientWidth") >= 600
        # The email's own phone rules apply in the narrow frame: the hero title shrinks.
        title = "parseFloat(getComputedStyle(doc.querySelector('.hero-title h1')).fontSize)"
        assert (frame_script(browser, "mobile", title), frame_script(browser, "desktop", title)) == (26, 31)


def test_the_dark_mode_toggle_switches_the_email_to_its_dark_styles(workspace: Workspace, browser: Chromium) -> None:
    background = "getComputedStyle(doc.body).backgroundColor"
    with serving(Preview(workspace, SLUG)) as url:
        open_page(browser, url)
        assert frame_script(browser, "mobile", background) == "rgb(244, 241, 234)"
        click(browser, "#dark")
        wait_for(lambda: frame_script(browser, "mobile", background) == "rgb(17, 22, 24)", "dark mode")
        assert frame_script(browser, "desktop", background) == "rgb(17, 22, 24)"
        click(browser, "#dark")
        wait_for(lambda: frame_script(browser, "mobile", background) == "rgb(244, 241, 234)", "light mode")


def test_the_tabs_show_text_headers_mime_and_lint(workspace: Workspace, browser: Chromium) -> None:
    with serving(Preview(workspace, SLUG)) as url:
        open_page(browser, url)
        for tab, panel, expected in (("text", "text", "Hi Alex,"),
                                     ("headers", "headers", "To: Alex Rivera <alex.rivera@example.com>"),
                                     ("mime", "mime", "Content-Type: multipart/alternative;"),
                                     ("lint", "lint-none", "No problems found.")):
            click(browser, f"[data-tab={tab}]")
            assert shown(browser, panel), tab
            assert expected in text_of(browser, panel), tab
            assert not shown(browser, "desktop")


def test_editing_the_article_reloads_the_page_by_itself(workspace: Workspace, browser: Chromium) -> None:
    with serving(Preview(workspace, SLUG)) as url:
        open_page(browser, url)
        edit(workspace.root / ARTICLE, "Back pain that lingers", "Stubborn back pain that lingers")
        for frame in ("mobile", "desktop"):
            wait_for(lambda frame=frame: frame_script(browser, frame, "doc.body.innerText.includes('Stubborn back pain')"),
                     f"the {frame} frame to show the edit", timeout=5)
        click(browser, "[data-tab=text]")
        assert "Stubborn back pain that lingers" in text_of(browser, "text")


def test_an_mjml_error_shows_in_the_page_and_fixing_it_brings_the_email_back(workspace: Workspace,
                                                                             browser: Chromium) -> None:
    with serving(Preview(workspace, SLUG)) as url:
        open_page(browser, url)
        edit(workspace.root / HEADER, "<mj-column>", "<mj-column><mj-text>")
        wait_for(lambda: shown(browser, "error"), "the error to show")
        assert text_of(browser, "error-message") == MJML_ERROR
        assert not shown(browser, "views")
        edit(workspace.root / HEADER, "<mj-column><mj-text>", "<mj-column>")
        wait_for(lambda: not shown(browser, "error"), "the error to go away")
        wait_for(lambda: frame_script(browser, "mobile", "doc.body.innerText.includes('Hi Alex,')"),
                 "the email to come back")


def test_lint_findings_show_on_the_email_beside_the_link_they_concern(workspace: Workspace, browser: Chromium) -> None:
    edit(workspace.root / ARTICLE, "Back pain that lingers",
         "Back pain that lingers ([click here](https://willowcreek-acupuncture.example/evidence))")
    with serving(Preview(workspace, SLUG)) as url:
        open_page(browser, url)
        note = "doc.querySelector('[data-lint-note=\"link-text\"]')"
        wait_for(lambda: frame_script(browser, "desktop", f"{note} !== null"), "the finding on the email")
        assert frame_script(browser, "desktop", f"{note}.textContent").startswith(
            "warning: link text 'click here' says nothing on its own")
        marked = "doc.querySelector('[data-lint=\"link-text\"]')"
        assert frame_script(browser, "desktop", f"{marked}.textContent") == "click here"
        assert frame_script(browser, "desktop", f"getComputedStyle({marked}).outlineStyle") == "solid"
        # The note sits just under the link it is about.
        gap = (f"{note}.getBoundingClientRect().top - {marked}.getBoundingClientRect().bottom")
        assert 0 <= frame_script(browser, "desktop", gap) <= 4
        click(browser, "#marks")
        wait_for(lambda: frame_script(browser, "desktop", f"{note} === null"), "the marks to go when unticked")
        assert frame_script(browser, "mobile", f"{marked} === null")
