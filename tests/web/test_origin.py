"""The pages' own forms must come from our pages (Origin, else Referer); a mail provider's one-click
POST comes from anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.audience.subscribers import Changes, add
from pipeline.db.engine import Store
from pipeline.errors import BrowserError
from pipeline.settings.workspace import Workspace
from pipeline.web.app import origin_of
from pipeline.web.browser import Chromium, headless_chromium
from tests.pages import fetch, post_form, wait_for
from tests.web.test_app import ANA, Site, assert_private_page, serving

OURS = "https://willowcreek-acupuncture.example"  # the origin of [unsubscribe] base_url
ONE_CLICK = (b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")


@pytest.fixture
def site(workspace: Workspace, store: Store) -> Iterator[Site]:
    with store.transaction() as conn:
        add(conn, ANA, Changes(first_name="Ana", tags={"back-pain", "vip"}), "cli")
    with serving(workspace, store) as served:
        yield served


def forms(site: Site) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every form our pages have: the confirm button, saving topics, leaving all."""
    token = site.token()
    return [(site.unsubscribe_url(token), [("confirm", "yes")]),
            (site.preferences_url(token), [("action", "save"), ("topic", "sleep")]),
            (site.preferences_url(token), [("action", "unsubscribe")])]


def test_forms_sent_from_another_sites_page_are_refused_and_change_nothing(site: Site) -> None:
    page = f"{OURS}/email/unsubscribe/{site.token()}"
    for url, fields in forms(site):
        for headers in ({"Origin": "https://evil.example"},
                        {"Origin": "null"},  # a sandboxed frame, or a page with no-referrer
                        {"Origin": "http://willowcreek-acupuncture.example"},  # another scheme
                        {"Origin": f"{OURS}:8443"},  # another port
                        {"Origin": "https://willowcreek-acupuncture.example.evil.example"},
                        {"Origin": "https://evil.example", "Referer": page},  # the Origin is what counts
                        {"Origin": site.url.replace("127.0.0.1", "localhost")},  # not the Host it was sent to
                        {"Referer": "https://evil.example/newsletter-tricks"},
                        {"Referer": "about:blank"}):
            reply = post_form(url, fields, headers)
            assert_private_page(reply, 403)
            assert "<h1>This form did not come from our page</h1>" in reply.text
            assert "Nothing was changed." in reply.text
    assert site.subscriber() == ("subscribed", ("back-pain", "vip"))
    assert site.events() == [("subscribed", "cli", None)]


@pytest.mark.parametrize("kind", ["base_url", "base_url with its port", "upper case", "the host it was sent to",
                                  "a Referer of ours", "neither header"])
def test_forms_from_our_pages_are_accepted(site: Site, kind: str) -> None:
    headers = {"base_url": {"Origin": OURS},
               "base_url with its port": {"Origin": f"{OURS}:443"},
               "upper case": {"Origin": "HTTPS://WillowCreek-Acupuncture.EXAMPLE"},
               "the host it was sent to": {"Origin": site.url},  # `campaign serve` on this machine
               "a Referer of ours": {"Referer": f"{OURS}/email/preferences/{site.token()}"},
               "neither header": {}}[kind]  # old clients and privacy settings strip both
    (confirm, button), (preferences, save), _ = forms(site)
    saved = post_form(preferences, save, headers)
    assert_private_page(saved, 200)
    assert "Your choices are saved." in saved.text
    left = post_form(confirm, button, headers)
    assert_private_page(left, 200)
    assert "<h1>You are unsubscribed</h1>" in left.text
    assert [kind for kind, _, _ in site.events()] == ["subscribed", "topics", "unsubscribed"]


@pytest.mark.parametrize("origin", ["https://mail.example", "null", None])
def test_one_click_posts_come_from_anywhere(site: Site, origin: str | None) -> None:
    reply = fetch(site.unsubscribe_url(site.token()), "POST", *ONE_CLICK,
                  headers={"Origin": origin, "Referer": "https://mail.example/inbox"} if origin else None)
    assert_private_page(reply, 200)
    assert site.events()[-1][:2] == ("unsubscribed", "web:one-click")


def test_origins_are_compared_by_scheme_host_and_port() -> None:
    assert origin_of("https://Clinic.Example/email") == ("https", "clinic.example", 443)
    assert origin_of("http://clinic.example:8080/x?y#z") == ("http", "clinic.example", 8080)
    assert origin_of("http://[::1]:8025") == ("http", "::1", 8025)
    for bad in ("null", "", "file:///etc/passwd", "https://", "https://clinic.example:99999", "javascript:x"):
        assert origin_of(bad) is None


# In headless Chromium: what a real browser sends with our own forms is accepted.

@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Chromium]:
    with headless_chromium() as opened:
        yield opened


def heading(browser: Chromium) -> Any:
    try:
        return browser.evaluate("document.readyState === 'complete' && document.querySelector('h1').textContent")
    except BrowserError:
        return None  # between two pages


def test_a_browser_uses_the_pages_buttons(site: Site, browser: Chromium) -> None:
    browser.open(site.preferences_url(site.token()))
    browser.evaluate("document.querySelector('input[value=sleep]').click()")
    browser.evaluate("document.querySelector('form button').click()")
    wait_for(lambda: browser.evaluate("!!document.querySelector('.notice')") if heading(browser) else False,
             "the preferences to be saved")
    assert site.subscriber() == ("subscribed", ("back-pain", "sleep", "vip"))
    browser.open(site.unsubscribe_url(site.token()))
    assert heading(browser) == "Unsubscribe from Willow Creek Acupuncture?"
    browser.evaluate("document.querySelector('form button').click()")
    wait_for(lambda: heading(browser) == "You are unsubscribed", "the confirmation page's button to work")
    assert site.events()[-1][:2] == ("unsubscribed", "web:confirm")
