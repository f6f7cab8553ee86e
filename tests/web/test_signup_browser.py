"""In headless Chromium: a reader fills in the signup form, takes the link from the email the SMTP
server received, and confirms with the page's button; what the browser sent is what is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.db.engine import Store
from pipeline.errors import BrowserError
from pipeline.settings.workspace import load_workspace
from pipeline.web.browser import Chromium, headless_chromium
from tests.pages import wait_for
from tests.smtp_server import SmtpTestServer
from tests.web.signup_site import Served, serving


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Chromium]:
    with headless_chromium() as opened:
        yield opened


@pytest.fixture
def served(workspace_dir: Path, store: Store, smtp_server: SmtpTestServer) -> Iterator[Served]:
    with serving(load_workspace(workspace_dir), store, smtp_server) as site:
        yield site


def heading(browser: Chromium) -> Any:
    try:
        return browser.evaluate("document.readyState === 'complete' && document.querySelector('h1').textContent")
    except BrowserError:
        return None  # between two pages


def test_a_reader_signs_up_and_confirms_in_a_browser(served: Served, browser: Chromium) -> None:
    browser.open(served.form_url)
    assert heading(browser) == "Subscribe to the Willow Creek Acupuncture newsletter"
    # The robot trap is out of sight and out of the Tab order; the labels name the fields.
    trap = browser.evaluate("(() => { const r = document.querySelector('#signup-website').getBoundingClientRect();"
                            " return [r.right < 0 || r.bottom < 0 || r.width <= 1, "
                            "document.querySelector('#signup-website').tabIndex]; })()")
    assert trap == [True, -1]
    assert browser.evaluate("document.querySelector('#signup-email').labels[0].textContent") == "Email address"
    browser.evaluate("document.querySelector('#signup-email').value = 'ana@example.com'")
    browser.evaluate("document.querySelector('#signup-first-name').value = 'Ana'")
    browser.evaluate("document.querySelector('input[value=sleep]').click()")
    browser.evaluate("document.querySelector('form button').click()")
    wait_for(lambda: heading(browser) == "Check your inbox", "the answer page")
    assert served.subscriber("ana@example.com") == ("pending", "Ana", ("sleep",))
    (mail,) = served.mails(1)
    browser.open(served.link(mail))
    assert heading(browser) == "Confirm your subscription"
    assert served.status("ana@example.com") == "pending"  # opening the link changed nothing
    browser.evaluate("document.querySelector('form button').click()")
    wait_for(lambda: heading(browser) == "You are subscribed", "the confirmation page's button to work")
    assert served.status("ana@example.com") == "subscribed"
    agent = browser.evaluate("navigator.userAgent")
    (record,) = served.consents("ana@example.com")
    assert record.form_url == served.form_url  # the page's own Referer (same-origin policy)
    assert (record.requested_ip, record.requested_user_agent) == ("127.0.0.1", agent)
    assert (record.confirmed_ip, record.confirmed_user_agent) == ("127.0.0.1", agent)


def test_the_browser_refuses_an_address_it_cannot_send(served: Served, browser: Chromium) -> None:
    """The field is type=email and required: the browser asks before anything is sent; the server
    checks again whatever a client skips (see test_signup)."""
    browser.open(served.form_url)
    browser.evaluate("document.querySelector('#signup-email').value = 'not an address'")
    assert browser.evaluate("document.querySelector('form').checkValidity()") is False
    browser.evaluate("document.querySelector('form button').click()")
    assert heading(browser) == "Subscribe to the Willow Creek Acupuncture newsletter"
    assert served.count() == 0
