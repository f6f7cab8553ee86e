"""[images] embed: the HTML and its images in one multipart/related part of each message."""

from __future__ import annotations

import email
import email.policy
import shutil
from pathlib import Path

import pytest

from pipeline.audience.recipients import Recipient
from pipeline.audience.tokens import Tokens
from pipeline.content.build import build_campaign
from pipeline.content.images import STORE
from pipeline.delivery.mime import MessageFactory
from pipeline.delivery.personalise import Personaliser
from pipeline.errors import MessageError
from pipeline.settings.workspace import Workspace, load_workspace
from tests.content.test_images import add_image, photo

SECRET = "a test secret that is long enough: 4f9Kq2ZxT7mB0wLs8Rj3"
ANA = Recipient(7, "ana@example.com", "Ana Lima", {"first_name": "Ana"})


def embedding(root: Path, pictures: int = 2) -> Workspace:
    for n in range(pictures):
        photo(root / f"campaigns/back-pain/images/room{n}.jpg", (700 + n * 100, 500))
    add_image(root, "\n\n".join(f"![Room number {n}](images/room{n}.jpg)" for n in range(pictures)))
    with (root / "campaign.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[images]\nembed = true\n")
    return load_workspace(root)


def factory(workspace: Workspace) -> MessageFactory:
    built = build_campaign(workspace, "back-pain")
    return MessageFactory(Personaliser(workspace, built.content, "back-pain", Tokens(SECRET)), 3)


def test_each_image_is_a_related_part_the_html_refers_to(workspace_dir: Path) -> None:
    workspace = embedding(workspace_dir)
    _, data = factory(workspace).build(ANA)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.iter_parts()  # type: ignore[misc]
    assert (text.get_content_type(), related.get_content_type()) == ("text/plain", "multipart/related")
    assert related.get_param("type") == "text/html"
    html, *images = related.iter_parts()
    assert "Hi Ana," in html.get_content()
    stored = {p.name: p.read_bytes() for p in (workspace_dir / STORE).iterdir()}
    assert len(images) == 2
    for image in images:
        cid = str(image["Content-ID"]).strip("<>")
        assert image.get_content_type() == "image/jpeg" and image.get_content_disposition() == "inline"
        assert f'src="cid:{cid}"' in html.get_content()
        assert image.get_content() == stored[cid.split("@")[0]]
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_without_embedded_images_the_message_keeps_its_two_parts(workspace: Workspace) -> None:
    _, data = factory(workspace).build(ANA)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert b"multipart/related" not in data


def test_a_lost_image_is_an_error_naming_the_store(workspace_dir: Path) -> None:
    workspace = embedding(workspace_dir, 1)
    built = build_campaign(workspace, "back-pain")
    shutil.rmtree(workspace_dir / STORE)
    with pytest.raises(MessageError, match=r"\.campaign-assets: the image room0-[0-9a-f]{12}\.jpg that this email "
                                           r"shows is not among the processed images"):
        MessageFactory(Personaliser(workspace, built.content, "back-pain", Tokens(SECRET)), 3)
