"""The preview shows the articles' own images from its own server, resized as the email carries
them, before any archive is published (and for embedded ones, which a browser cannot show by cid:)."""

from __future__ import annotations

import email
import email.policy
import io

import pytest
from PIL import Image

from pipeline.settings.workspace import Workspace, load_workspace
from pipeline.web.browser import headless_chromium
from pipeline.web.preview import Preview
from tests.conftest import needs_chromium
from tests.content.test_images import BASE, add_image, photo, with_archive
from tests.pages import fetch
from tests.web.test_preview import SLUG, serving


def with_room(workspace: Workspace, embed: bool) -> Workspace:
    root = workspace.root
    photo(root / "campaigns/back-pain/images/room.jpg", (1800, 1200))
    add_image(root, "![Our quiet treatment room](images/room.jpg)")
    return with_archive(root, "[images]\nembed = true\n" if embed else "")


@pytest.mark.parametrize("embed", [False, True])
def test_the_preview_serves_the_resized_images(workspace: Workspace, embed: bool) -> None:
    workspace = with_room(workspace, embed)
    preview = Preview(workspace, SLUG)
    (asset,) = preview.state.build.rendered.newsletter.assets  # type: ignore[union-attr]
    assert asset.src.startswith("cid:" if embed else f"{BASE}/assets/")
    with serving(preview) as url:
        page = fetch(f"{url}email.html").text
        assert f'src="assets/{asset.name}"' in page and asset.src not in page
        assert f'src="assets/{asset.name}"' in fetch(f"{url}email-dark.html").text
        image = fetch(f"{url}assets/{asset.name}")
        assert (image.status, image.content_type) == (200, "image/jpeg")
        assert Image.open(io.BytesIO(image.body)).size == (1200, 800)
        assert fetch(f"{url}assets/other-000000000000.jpg").status == 404
        # The message itself is untouched: it refers to the image as readers' mail clients will fetch it.
        message = email.message_from_bytes(fetch(f"{url}message.eml").body, policy=email.policy.default)
        html = message.get_body(("html",))
        assert html is not None and f'src="{asset.src}"' in html.get_content()  # type: ignore[attr-defined]


@needs_chromium
def test_the_image_loads_in_the_browser(workspace: Workspace) -> None:
    preview = Preview(with_room(workspace, False), SLUG)
    with serving(preview) as url, headless_chromium() as browser:
        browser.set_viewport(700, 800)
        browser.open(f"{url}email.html")
        loaded = browser.evaluate("[...document.images].filter(i => i.src.includes('/assets/'))"
                                  ".map(i => i.complete && i.naturalWidth)")
        assert loaded == [1200]
    assert load_workspace(workspace.root).archive.base_url == BASE
