"""The preview's parts: the message behind the Headers and Raw MIME tabs, dark mode, recipients."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from pipeline.build import build_campaign, personalise, sample_values
from pipeline.errors import NotFoundError
from pipeline.preview import Preview, find_recipient, force_dark, message_headers, preview_message
from pipeline.settings import Workspace
from tests.conftest import edit

SLUG = "back-pain"
SETTINGS = Path("campaigns/back-pain/settings.toml")


def parse(message: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def as_sent(part: str) -> str:
    """A part as it reads after the trip through SMTP: CRLF line ends, ending in one."""
    return part.rstrip("\n").replace("\n", "\r\n") + "\r\n"


# The message behind the Headers and Raw MIME tabs.

def test_preview_message_is_multipart_alternative_with_list_unsubscribe(workspace: Workspace) -> None:
    build = build_campaign(workspace, SLUG)
    values = sample_values(workspace)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    raw = preview_message(build, workspace, values)
    msg = parse(raw)
    # A long header is folded onto a continuation line, which the parser keeps as a leading space.
    assert [(k, str(v).strip()) for k, v in msg.items() if k not in ("Date", "Content-Type")] == [
        ("From", '"Dr. Mei Lin at Willow Creek Acupuncture" <newsletter@willowcreek-acupuncture.example>'),
        ("Reply-To", "frontdesk@willowcreek-acupuncture.example"),
        ("To", "Alex Rivera <alex.rivera@example.com>"),
        ("Subject", "Can acupuncture ease persistent back pain?"),
        ("Message-ID", "<preview.back-pain.b225a87aee6a0da7f076@willowcreek-acupuncture.example>"),
        ("List-Unsubscribe", "<https://willowcreek-acupuncture.example/email/unsubscribe/sample>, "
                             "<mailto:unsubscribe@willowcreek-acupuncture.example?subject=unsubscribe>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("MIME-Version", "1.0"),
    ]
    assert before <= msg["Date"].datetime <= datetime.now(timezone.utc)
    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.iter_parts()
    html, text = personalise(build.rendered, workspace, values)
    assert (text_part.get_content_type(), text_part.get_content_charset()) == ("text/plain", "utf-8")
    assert (html_part.get_content_type(), html_part.get_content_charset()) == ("text/html", "utf-8")
    assert text_part.get_content() == as_sent(text)
    assert html_part.get_content() == as_sent(html)
    # email.policy.SMTP: CRLF line ends, and no line longer than SMTP allows.
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_preview_message_keeps_subscriber_data_on_one_line_and_fills_the_subject(workspace: Workspace) -> None:
    edit(workspace.root / SETTINGS, 'subject = "Can acupuncture ease persistent back pain?"',
         'subject = "*|FNAME|*, can acupuncture help?"')
    build = build_campaign(workspace, SLUG)
    values = {**sample_values(workspace), "first_name": "Zoë\r\nBcc: victim@example.com", "last_name": "Ng"}
    msg = parse(preview_message(build, workspace, values))
    assert msg["To"] == '"Zoë Bcc: victim@example.com Ng" <alex.rivera@example.com>'
    assert msg["Subject"] == "Zoë Bcc: victim@example.com, can acupuncture help?"
    assert msg["Bcc"] is None


def test_message_headers_are_unfolded_one_a_line(workspace: Workspace) -> None:
    raw = preview_message(build_campaign(workspace, SLUG), workspace, sample_values(workspace))
    assert b"\r\nMessage-ID:\r\n <preview." in raw  # folded in the message itself
    lines = message_headers(raw).splitlines()
    assert lines[5] == "Message-ID: <preview.back-pain.b225a87aee6a0da7f076@willowcreek-acupuncture.example>"
    assert [line.split(":")[0] for line in lines] == [
        "From", "Reply-To", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
        "MIME-Version", "Content-Type"]


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
    people = [("sample", sample_values(workspace)), ("Zoë", {"email": "Zoe@Example.com"})]
    assert find_recipient(people, "sample") == 0
    assert find_recipient(people, "zoe@example.com") == 1
    with pytest.raises(NotFoundError) as caught:
        find_recipient(people, "nobody@example.com")
    assert str(caught.value) == ("no recipient 'nobody@example.com' to preview as (known: "
                                 "sample <alex.rivera@example.com>, Zoë <Zoe@Example.com>)")


def test_an_unknown_campaign_fails_at_once(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError) as caught:
        Preview(workspace, "ghost")
    assert str(caught.value) == f"no campaign 'ghost' in {workspace.campaigns_dir} (known: back-pain)"
