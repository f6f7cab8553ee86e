"""Tracked messages as MIME: who is tracked, what changes in their copy, and what does not."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from pipeline.audience.recipients import Recipient, sample_recipient
from pipeline.audience.tokens import Tokens
from pipeline.content.build import build_campaign
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Personaliser
from pipeline.engagement.policy import TrackingPlan, declined
from pipeline.settings.workspace import load_workspace
from tests.tracked import BASE, track

SECRET = "a-test-secret: 4f9Kq2ZxT7mB0wLs8Rj3"


def parts(message: bytes) -> tuple[str, str]:
    parsed = email.message_from_bytes(message, policy=email.policy.SMTP)
    text, html = list(parsed.iter_parts())
    return text.get_content(), html.get_content()


def factories(root: Path, plan: TrackingPlan | None) -> tuple[Personaliser, MessageFactory]:
    workspace = load_workspace(root)
    content = build_campaign(workspace, "back-pain").content
    personaliser = Personaliser(workspace, content, "back-pain", Tokens(SECRET))
    return personaliser, MessageFactory(personaliser, 5, plan)


def test_a_tracked_copy_differs_from_its_untracked_one_only_in_links_pixel_and_notice(workspace_dir: Path) -> None:
    track(workspace_dir)
    personaliser, tracked = factories(workspace_dir, TrackingPlan(True, True))
    _, plain = factories(workspace_dir, None)
    ana = Recipient(7, "ana@example.com", "Ana", {"first_name": "Ana", "email": "ana@example.com"})
    text, html = parts(tracked.build(ana)[1])
    plain_text, plain_html = parts(plain.build(ana)[1])
    tokens = set(re.findall(re.escape(BASE) + r"/[co]/([A-Za-z0-9_-]{36})", html))
    assert len(tokens) == 4  # three links and the pixel
    undone = re.sub(r'<img src="' + re.escape(BASE) + r'/o/[^>]+>', "", html)
    for number, url in enumerate(personaliser.links, start=1):
        token = next(t for t in tokens if tracked.codec.read(t).link == number)  # type: ignore[union-attr]
        undone = undone.replace(f"{BASE}/c/{token}", url.replace("&", "&amp;"))
        text = text.replace(f"{BASE}/c/{token}", url)
    notice = "We count opens and link clicks of this newsletter to learn what our readers find useful."
    assert undone.replace(notice, "") == plain_html and notice in html
    # The text part states it too, on lines of its own straight after the reason, wrapped like the rest.
    reason = "or signed up for our health newsletter.\n"
    assert plain_text.count(reason) == 1
    wrapped = "We count opens and link clicks of this newsletter to learn what our readers\nfind useful.\n"
    assert text == plain_text.replace(reason, reason + wrapped)


def test_no_one_is_tracked_in_a_test_or_preview_and_readers_who_said_no_are_not_either(workspace_dir: Path) -> None:
    track(workspace_dir)
    _, tracked = factories(workspace_dir, TrackingPlan(True, True, frozenset({9})))
    personaliser, _ = factories(workspace_dir, TrackingPlan(True, True))
    test_copy = MessageFactory(personaliser, 0, TrackingPlan(True, True))  # test-send and the preview: send 0
    for factory, recipient in ((tracked, Recipient(9, "tagged@example.com", None, {"email": "tagged@example.com"})),
                               (tracked, Recipient(8, "field@example.com", None, {"no_tracking": "yes"})),
                               (test_copy, sample_recipient("me@clinic.example"))):
        _, html = parts(factory.build(recipient)[1])
        assert f"{BASE}/c/" not in html and f"{BASE}/o/" not in html
    untracked = parts(tracked.build(Recipient(9, "t@example.com", None, {}))[1])
    assert "We count opens" not in untracked[0] and "We count opens" not in untracked[1]
    assert [declined(None, {"no_tracking": v}) for v in ("yes", "1", True, "x", "", "no", "false", 0, False, None)] \
        == [True, True, True, True, False, False, False, False, False, False]
    assert declined(("back-pain", "no-tracking"), {})
