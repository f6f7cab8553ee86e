"""The preview shows the articles' own images from its own server, resized as the email carries
them, before any archive is published (and for embedded ones, which a browser cannot show by cid:);
a changed, added or removed picture rebuilds it like an edited article."""

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
from tests.content.test_images import ARTICLE, BASE, add_image, line_of, photo, with_archive
from tests.pages import fetch
from tests.web.test_preview import SLUG, live, serving


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


def test_changing_a_picture_rebuilds_the_preview_and_shows_the_new_one(workspace: Workspace) -> None:
    workspace = with_room(workspace, False)
    room = workspace.root / "campaigns/back-pain/images/room.jpg"
    line = line_of(workspace.root / ARTICLE, "images/room.jpg")
    with live(workspace) as served:
        (first,) = served.preview.state.build.rendered.newsletter.assets  # type: ignore[union-attr]
        photo(room, (800, 600))  # the picture replaced, the article untouched
        data = served.next_version()
        assert (data["version"], data["error"]) == (2, None)
        (second,) = served.preview.state.build.rendered.newsletter.assets  # type: ignore[union-attr]
        assert second.name != first.name
        assert f'src="assets/{second.name}"' in fetch(f"{served.url}email.html").text
        assert Image.open(io.BytesIO(fetch(f"{served.url}assets/{second.name}").body)).size == (800, 600)
        assert fetch(f"{served.url}assets/{first.name}").status == 404

        room.unlink()
        data = served.next_version()
        assert (data["version"], data["error"]) == (3, f"{workspace.root / ARTICLE}:{line}: image 'images/room.jpg' "
                                                        f"not found: no file {room}")
        photo(room, (1000, 500))  # put back: the preview comes back by itself
        data = served.next_version()
        assert (data["version"], data["error"]) == (4, None)
        (third,) = served.preview.state.build.rendered.newsletter.assets  # type: ignore[union-attr]
        assert (third.width, third.height) == (1000, 500)


def test_pictures_beside_the_article_rebuild_the_preview_and_others_do_not(workspace: Workspace) -> None:
    workspace = with_room(workspace, False)
    with live(workspace) as served:
        photo(workspace.root / "campaigns/back-pain/images/unused.png", (300, 200), "PNG")
        assert served.next_version()["version"] == 2  # beside the article: it may be the one it will show
        photo(workspace.root / "elsewhere.png", (300, 200), "PNG")
        with pytest.raises(TimeoutError):
            served.events.next(timeout=0.5)


@needs_chromium
@pytest.mark.parametrize("embed", [False, True])
def test_a_screenshot_shows_the_pictures_before_the_archive_is_published(workspace: Workspace, embed: bool) -> None:
    root = workspace.root
    Image.new("RGB", (1200, 600), (230, 20, 20)).save(root / "campaigns/back-pain/red.png")
    add_image(root, "![A red wall](red.png)")
    workspace = with_archive(root, "[images]\nembed = true\n" if embed else "")
    shot = Image.open(io.BytesIO(Preview(workspace, SLUG).screenshot("sample", 600))).convert("RGB")
    pixels = shot.tobytes()
    red = sum(1 for i in range(0, len(pixels), 3) if pixels[i] > 200 and pixels[i + 1] < 60 and pixels[i + 2] < 60)
    assert red > 500 * 200  # the picture, at the column's width (it is not on the web yet, nor a cid: a browser shows)
