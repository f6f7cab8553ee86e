"""Who may read a running preview: only requests naming its own address, carrying its secret."""

from __future__ import annotations

import re
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.audience.recipients import Recipient, sample_recipient
from pipeline.settings.workspace import Workspace
from pipeline.web.preview import Preview
from pipeline.web.preview_access import NO_SECRET, WRONG_HOST, allowed_hosts
from tests.pages import fetch
from tests.web.test_preview import SLUG, serving

ZOE = Recipient(5, "zoe@example.com", "Zoë Ng", {"first_name": "Zoë", "last_name": "Ng", "email": "zoe@example.com"})
PRIVATE_PATHS = ("", "status", "events", "email.html?r=1", "email.txt?r=1", "headers.txt?r=1", "message.eml?r=1",
                 "lint.json")


def assert_refused(reply: Any, status: int, body: bytes) -> None:
    """Refused with a short plain text and no more: not a byte of the preview."""
    assert (reply.status, reply.body) == (status, body)
    assert reply.content_type == "text/plain; charset=utf-8"
    # (Connection: close answers urllib's own.)
    assert {name.lower() for name in reply.headers} == {"date", "server", "content-type", "content-length",
                                                        "cache-control", "referrer-policy", "connection"}


def raw_get(url: str, request: bytes) -> bytes:
    """Send request bytes as they are to url's server; everything it answers until it closes."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_page_of_another_site_resolving_to_loopback_is_refused(workspace: Workspace) -> None:
    """DNS rebinding: evil.example made to resolve to 127.0.0.1 sends its own name as Host."""
    preview = Preview(workspace, SLUG, recipients=lambda: [sample_recipient(), ZOE])
    with serving(preview) as url:
        port = urlsplit(url).port
        assert "zoe@example.com" in fetch(url + "status").text  # the preview itself answers
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}",
                     f"localhost.:{port}", f"127.0.0.1:{port + 1}", f"127.0.0.1:{port}0", "127.0.0.1"):
            for path in PRIVATE_PATHS:
                assert_refused(fetch(url + path, headers={"Host": host}), 421, WRONG_HOST)
        # HTTP/1.0 needs no Host at all: no Host is a wrong one.
        answer = raw_get(url, f"GET {urlsplit(url).path}status HTTP/1.0\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 421 ") and answer.endswith(b"\r\n\r\n" + WRONG_HOST)


def test_the_right_address_without_the_secret_is_refused(workspace: Workspace) -> None:
    """Another local page or process that finds the port has not seen the printed URL."""
    preview = Preview(workspace, SLUG, recipients=lambda: [sample_recipient(), ZOE])
    with serving(preview) as url:
        parts = urlsplit(url)
        secret = parts.path.split("/")[2]
        assert re.fullmatch(r"/p/[A-Za-z0-9_-]{24}/", parts.path)
        root = f"http://127.0.0.1:{parts.port}/"
        for prefix in ("", "p/", "p/wrong/", f"p/{secret[:-1]}/", f"p/{secret}x/", f"p/{secret.swapcase()}/",
                       f"q/{secret}/", f"x/p/{secret}/"):
            for path in PRIVATE_PATHS:
                assert_refused(fetch(root + prefix + path), 403, NO_SECRET)
        # With both, under every loopback name; the prefix alone is sent on to the page.
        for host in (f"127.0.0.1:{parts.port}", f"localhost:{parts.port}", f"LocalHost:{parts.port}"):
            reply = fetch(url + "email.html?r=1", headers={"Host": host})
            assert reply.status == 200 and "Hi Zoë," in reply.text
            assert reply.headers["referrer-policy"] == "no-referrer"  # the secret never leaves in a Referer
        moved = fetch(url.rstrip("/") + "?r=1")
        assert (moved.status, moved.headers["location"]) == (307, f"/p/{secret}/?r=1")


def test_each_run_has_its_own_secret(workspace: Workspace) -> None:
    preview = Preview(workspace, SLUG)
    with serving(preview) as first:
        pass
    with serving(preview) as second:
        assert urlsplit(first).path != urlsplit(second).path
        assert_refused(fetch(f"http://127.0.0.1:{urlsplit(second).port}{urlsplit(first).path}status"), 403, NO_SECRET)


def test_the_hosts_it_answers_to() -> None:
    assert allowed_hosts(["127.0.0.1"], 8025) == {"127.0.0.1:8025", "localhost:8025", "[::1]:8025"}
    assert allowed_hosts(["::1", "::1"], 8025) == {"127.0.0.1:8025", "localhost:8025", "[::1]:8025"}
    assert allowed_hosts(["192.0.2.7", "Preview.Example"], 9000) == {
        "127.0.0.1:9000", "localhost:9000", "[::1]:9000", "192.0.2.7:9000", "preview.example:9000"}
    assert "[2001:db8::1]:9000" in allowed_hosts(["2001:db8::1"], 9000)
    assert allowed_hosts(["127.0.0.1"], 80) >= {"127.0.0.1", "localhost", "[::1]", "localhost:80"}


def test_it_answers_on_ipv6_loopback(workspace: Workspace) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with serving(Preview(workspace, SLUG), host="::1") as url:
        assert re.fullmatch(r"http://\[::1\]:\d+/p/[\w-]+/", url)
        assert fetch(url + "status").json()["error"] is None
        assert_refused(fetch(url + "status", headers={"Host": "evil.example"}), 421, WRONG_HOST)
