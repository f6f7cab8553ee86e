"""`campaign serve` over real HTTP: a reader's own copy at /view/TOKEN, and the built archive at /archive/."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html

from pipeline.audience.subscribers import erase
from pipeline.audience.tokens import Tokens
from pipeline.delivery.frozen import frozen
from pipeline.delivery.personalise import ViewTokens
from pipeline.delivery.sends import find_send
from pipeline.settings.workspace import load_workspace
from pipeline.web.app import create_app
from tests.conftest import Campaign
from tests.content.test_images import add_image, photo, with_archive
from tests.pages import Reply, fetch
from tests.web.test_app import running
from tests.web.test_archive import PEOPLE, html_of, messages, store_of, subscribe

UNSUBSCRIBE_BASE = "https://willowcreek-acupuncture.example/email"


@contextmanager
def serving(campaign: Campaign) -> Iterator[str]:
    store = store_of(campaign)
    workspace = load_workspace(campaign.root)
    try:
        with running(create_app(workspace, store, Tokens.of_workspace(campaign.root))) as url:
            yield url
    finally:
        store.close()


def raw_get(url: str, path: str) -> tuple[int, str]:
    """A GET of exactly this path, as a hostile client sends it: no normalising of "..", no decoding."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def view_link(html: str) -> str:
    (link,) = [a.get("href") for a in lxml.html.document_fromstring(html).find_class("view-link")]
    return str(link)


def send_back_pain(campaign: Campaign) -> None:
    subscribe(campaign)
    result = campaign("send", "back-pain", "--yes")
    assert result.exit_code == 0, result.stderr


def test_view_in_browser_shows_the_readers_own_copy_and_refuses_anything_else(campaign: Campaign) -> None:
    send_back_pain(campaign)  # no [archive] base_url: the link goes to `campaign serve`
    ana = next(m for m in messages(campaign) if PEOPLE[0][0] in str(m["To"]))
    sent_html = html_of(ana)
    link = view_link(sent_html)
    assert link.startswith(f"{UNSUBSCRIBE_BASE}/view/")
    token = urlsplit(link).path.rsplit("/", 1)[1]
    with serving(campaign) as url:
        reply = fetch(f"{url}/email/view/{token}")  # the app answers under base_url's path, as a proxy passes it
        assert reply.status == 200 and reply.content_type == "text/html; charset=utf-8"
        headers = {k.lower(): v for k, v in reply.headers.items()}
        assert headers["x-robots-tag"] == "noindex, nofollow"
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "same-origin"
        assert "form-action 'none'" in headers["content-security-policy"]
        assert reply.text == sent_html  # exactly what her message showed: the one personalisation path
        assert "Hi Ana," in reply.text
        assert fetch(f"{url}/view/{token}").text == sent_html

        nobody = fetch(f"{url}/view/not-a-token")
        assert nobody.status == 404
        payload, signature = token.rsplit(".", 1)
        tampered = [payload.replace("1.", "2.", 1) + "." + signature,  # another reader's id
                    payload + "." + signature[:-2] + ("AA" if not signature.endswith("AA") else "BB"),
                    Tokens.of_workspace(campaign.root).make(1, PEOPLE[0][0], "back-pain")]  # an unsubscribe token
        for bad in tampered:
            refused = fetch(f"{url}/view/{bad}")
            assert (refused.status, refused.body) == (nobody.status, nobody.body)  # says nothing more
            assert "Ana" not in refused.text and PEOPLE[0][0] not in refused.text
        # Nor does a view token unsubscribe anyone.
        assert fetch(f"{url}/unsubscribe/{token}").status == 400

        store = store_of(campaign)
        with store.transaction() as conn:
            erase(conn, PEOPLE[0][0], "test")
        store.close()
        gone = fetch(f"{url}/view/{token}")
        assert (gone.status, gone.body) == (nobody.status, nobody.body)


def test_a_view_token_names_one_send_and_one_reader(campaign: Campaign) -> None:
    send_back_pain(campaign)
    store = store_of(campaign)
    with store.reading() as conn:
        send = find_send(conn, "back-pain")
        assert send is not None
        content = frozen(conn, send.id)
    store.close()
    assert content is not None
    views = ViewTokens(Tokens.of_workspace(campaign.root))
    right = views.make(2, PEOPLE[1][0], "back-pain", content.digest)
    link = views.read(right)
    assert link is not None and (link.subscriber_id, link.digest, link.campaign) == (2, content.digest[:12], "back-pain")
    with serving(campaign) as url:
        assert "Hi Ben," in fetch(f"{url}/view/{right}").text
        for wrong in (views.make(2, "someone.else@example.com", "back-pain", content.digest),  # not bound to Ben
                      views.make(2, PEOPLE[1][0], "back-pain", "0" * 64),  # no such send
                      views.make(2, PEOPLE[1][0], "sleep", content.digest)):  # no such campaign
            assert fetch(f"{url}/view/{wrong}").status == 404
        assert fetch(f"{url}/view/sample").status == 404  # the preview's made-up reader


def test_embedded_images_show_in_the_browser_copy(campaign: Campaign) -> None:
    photo(campaign.root / "campaigns/back-pain/images/room.jpg", (900, 600))
    add_image(campaign.root, "![Our quiet treatment room](images/room.jpg)")
    with (campaign.root / "campaign.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[images]\nembed = true\n")
    send_back_pain(campaign)
    message = messages(campaign)[0]
    related = next(part for part in message.walk() if part.get_content_type() == "multipart/related")
    html_part, image_part = list(related.iter_parts())
    assert html_part.get_content_type() == "text/html" and image_part.get_content_type() == "image/jpeg"
    cid = str(image_part["Content-ID"]).strip("<>")
    assert f'src="cid:{cid}"' in html_of(message)
    token = urlsplit(view_link(html_of(message))).path.rsplit("/", 1)[1]
    name = cid.split("@")[0]
    with serving(campaign) as url:
        page = fetch(f"{url}/view/{token}").text
        assert f'src="assets/{name}"' in page and "cid:" not in page
        image = fetch(f"{url}/view/assets/{name}")
        assert (image.status, image.content_type, image.body) == (200, "image/jpeg", image_part.get_content())
        assert fetch(f"{url}/view/assets/..%2Fcampaign.toml").status == 404


def archived_reply(url: str, path: str) -> Reply:
    reply = fetch(f"{url}{path}")
    return Reply(reply.status, reply.content_type, {k.title(): v for k, v in reply.headers.items()}, reply.body)


def test_serve_serves_the_built_archive_and_nothing_beside_it(campaign: Campaign, tmp_path: Path) -> None:
    photo(campaign.root / "campaigns/back-pain/images/room.jpg", (900, 600))
    add_image(campaign.root, "![Our quiet treatment room](images/room.jpg)")
    with_archive(campaign.root)
    send_back_pain(campaign)
    assert campaign("archive").exit_code == 0
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (campaign.root / "out/archive/link.txt").symlink_to(secret)
    with serving(campaign) as url:
        index = archived_reply(url, "/archive/")
        assert index.status == 200 and 'href="back-pain/"' in index.text
        assert index.headers["Cache-Control"] == "public, max-age=300"
        moved = archived_reply(url, "/archive/back-pain")
        assert (moved.status, moved.headers["Location"]) == (301, "/archive/back-pain/")
        assert archived_reply(url, "/archive").status == 301
        page = archived_reply(url, "/email/archive/back-pain/")
        assert page.status == 200 and "Hi there," in page.text
        feed = archived_reply(url, "/archive/feed.xml")
        assert feed.content_type == "application/atom+xml"
        (image,) = (campaign.root / "out/archive/assets").iterdir()
        asset = archived_reply(url, f"/archive/assets/{image.name}")
        assert asset.body == image.read_bytes() and "immutable" in asset.headers["Cache-Control"]
        for path in ("/archive/../campaign.toml", "/archive/%2e%2e/campaign.toml", "/archive/..%2fcampaign.toml",
                     "/archive/back-pain/../../campaign.db", "/archive/link.txt", "/archive/.hidden",
                     "/archive//etc/passwd", "/archive/assets/"):
            status, body = raw_get(url, path)
            assert status in (404, 400), path
            assert "not for the web" not in body and "[brand]" not in body
