"""A reader's browser, for real: headless Chromium opens a sent message from the Maildir outbox with
images on, which loads the open pixel from a running `campaign serve`, and clicks a link, which
the server redirects to the practice's page with its UTM parameters."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pipeline.db.engine import Store, default_url
from pipeline.web.browser import headless_chromium
from tests.conftest import Campaign, edit, needs_chromium
from tests.pages import wait_for
from tests.tracked import outbox, readers, track, wait_events


class Landing(http.server.ThreadingHTTPServer):
    """The practice's website: it notes every path asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                body = b"<!doctype html><title>Book</title><h1>Book an appointment</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def campaign_serve(root: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """`campaign serve` in a process of its own, stopped with Ctrl-C as a person would."""
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(root), "serve", "--port",
                                str(port)], stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert f"at http://127.0.0.1:{port}/" in line, line
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)


@needs_chromium
def test_chromium_loads_the_pixel_and_a_click_lands_on_the_practices_page(workspace_dir: Path) -> None:
    landing = Landing()
    threading.Thread(target=landing.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{landing.server_address[1]}"
    port = free_port()
    track(workspace_dir)
    config = workspace_dir / "campaign.toml"
    edit(config, 'base_url = "https://willowcreek-acupuncture.example/email"',
         f'base_url = "http://127.0.0.1:{port}/email"')
    edit(config, 'utm_domains = ["willowcreek-acupuncture.example"]',
         'utm_domains = ["willowcreek-acupuncture.example", "127.0.0.1"]')
    edit(workspace_dir / "campaigns" / "back-pain" / "settings.toml",
         'url = "https://willowcreek-acupuncture.example/book"', f'url = "{site}/book"')
    store = Store(default_url(workspace_dir))
    readers(store, 1)
    assert Campaign(workspace_dir)("send", "back-pain", "--yes").exit_code == 0
    mail = outbox(workspace_dir)["reader0@example.com"]
    page = workspace_dir / "message.html"
    page.write_text(mail.html, encoding="utf-8")
    try:
        with campaign_serve(workspace_dir, port), headless_chromium() as browser:
            browser.open(page.as_uri())  # waits for the load event: the pixel is loaded by then
            assert browser.evaluate("[...document.images].some(i => i.src.includes('/o/') && i.complete "
                                    "&& i.naturalWidth === 1)")
            opened = wait_events(store, 1)
            assert [(e.kind, e.agent, e.machine) for e in opened] == [("open", "browser", False)]
            # The button opens a new window (target="_blank"), which a click from a script may not:
            # here it opens in the same page.
            browser.evaluate("(() => { const a = [...document.links].find(a => a.textContent.includes("
                             "'Book an appointment')); a.removeAttribute('target'); a.click(); })()")
            wait_for(lambda: landing.paths, "the click to land on the practice's page", 10)
            wait_for(lambda: browser.evaluate("document.title") == "Book", "the page to show", 10)
            query = parse_qs(urlsplit(landing.paths[0]).query)
            assert urlsplit(landing.paths[0]).path == "/book"
            assert query == {"utm_source": ["newsletter"], "utm_medium": ["email"], "utm_campaign": ["back-pain"]}
            events = wait_events(store, 2)
    finally:
        landing.shutdown()
        store.close()
    assert [(e.kind, e.agent, e.machine) for e in events] == [("open", "browser", False), ("click", "browser", False)]
    assert events[1].url == f"{site}/book?utm_source=newsletter&utm_medium=email&utm_campaign=back-pain"
