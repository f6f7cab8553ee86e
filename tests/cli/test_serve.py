"""`campaign serve` as a user runs it, and the documented production command: real processes
serving HTTP on 127.0.0.1 until they are stopped."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tests.conftest import Campaign
from tests.pages import fetch, post_form

SECRET = "a-test-secret: 4f9Kq2ZxT7mB0wLs8Rj3"
STARTED = re.compile(r"Serving unsubscribe and preferences pages at (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C to stop\)\n")


class Stderr:
    """A process's stderr, read line by line in a thread, so waiting for a line can time out."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float = 15) -> str:
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the process ended"
        return line

    def rest(self) -> str:
        """Everything after the lines read so far, once the process has ended."""
        self.reader.join(10)
        rest = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        return "".join(rest)


@contextmanager
def process(*args: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], Stderr]]:
    running = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **env})
    assert running.stdout is not None and running.stderr is not None
    try:
        yield running, Stderr(running.stderr)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
        running.stdout.close()
        running.stderr.close()


def token(subscriber_id: int = 1, email: str = "ana@example.com") -> str:
    from pipeline.audience.tokens import Tokens

    return Tokens(SECRET).make(subscriber_id, email, "back-pain")


def add_ana(audience: Campaign) -> None:
    added = audience("subscribers", "add", "ana@example.com", "--tag", "back-pain")
    assert added.exit_code == 0


def test_the_command_serves_until_ctrl_c(audience: Campaign) -> None:
    add_ana(audience)
    assert audience.db_url is not None
    with process("pipeline", "--workspace", str(audience.root), "--db", audience.db_url, "serve", "--port", "0",
                 env={"CAMPAIGN_SECRET": SECRET}) as (running, stderr):
        started = STARTED.fullmatch(stderr.next())
        assert started, "no URL on stderr"
        url, port = started.group(1), int(started.group(2))
        assert stderr.next() == ("They also answer under /email/, the path of "
                                        "https://willowcreek-acupuncture.example/email\n")
        assert stderr.next() == f"The signup form is at {url}subscribe\n"
        page = fetch(f"{url}unsubscribe/{token()}")
        assert page.status == 200 and "<strong>ana@example.com</strong>" in page.text
        assert audience("subscribers", "list").stdout == "ana@example.com\t\t\tsubscribed\tback-pain\n"
        saved = post_form(f"{url}email/preferences/{token()}", [("action", "save"), ("topic", "sleep")])
        assert saved.status == 200 and "Your choices are saved." in saved.text
        done = post_form(f"{url}email/unsubscribe/{token()}", [("List-Unsubscribe", "One-Click")])
        assert done.status == 200 and "<h1>You are unsubscribed</h1>" in done.text
        assert fetch(f"{url}unsubscribe/forged").status == 400
        running.send_signal(signal.SIGINT)
        assert running.wait(timeout=10) == 0
        assert running.stdout is not None and running.stdout.read() == ""
        assert stderr.rest() == "Stopped.\n"
    assert audience("subscribers", "list").stdout == "ana@example.com\t\t\tunsubscribed\tsleep\n"
    with socket.create_server(("127.0.0.1", port)):
        pass  # the port is free again


def test_the_production_command_from_the_readme(audience: Campaign) -> None:
    """uvicorn's own command line with the app factory, configured by the environment alone, and
    the documented protocol that times slow clients out (1 s here instead of 5, for a quick test)."""
    add_ana(audience)
    assert audience.db_url is not None
    env = {"CAMPAIGN_WORKSPACE": str(audience.root), "CAMPAIGN_DB": audience.db_url, "CAMPAIGN_SECRET": SECRET}
    with process("uvicorn", "--factory", "pipeline.web.app:create_app", "--host", "127.0.0.1", "--port", "0",
                 "--http", "pipeline.web.http_protocol:TimedH11Protocol", "--timeout-keep-alive", "1",
                 "--proxy-headers", "--workers", "1", "--no-access-log", env=env) as (running, stderr):
        url = None
        while url is None:
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:(\d+))", stderr.next())
            url, port = (found.group(1), int(found.group(2))) if found else (None, 0)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(b"POST /email/unsubscribe/")
            opened = time.monotonic()
            reply = post_form(f"{url}/email/unsubscribe/{token()}", [("List-Unsubscribe", "One-Click")])
            assert reply.status == 200 and "<h1>You are unsubscribed</h1>" in reply.text
            assert slow.recv(1024) == b""  # closed by the server, unanswered
            assert time.monotonic() - opened < 3
        running.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then ends by the signal it was sent, as service managers expect.
        assert running.wait(timeout=10) == -signal.SIGTERM
        rest = stderr.rest()
        assert "Finished server process" in rest and "Traceback" not in rest
    assert audience("subscribers", "list").stdout == "ana@example.com\t\t\tunsubscribed\tback-pain\n"


def test_a_port_it_cannot_listen_on_is_a_one_line_error(campaign: Campaign) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = campaign("serve", "--port", str(port))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"campaign: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
                             "choose another with --host or --port\n")


def test_a_broken_workspace_fails_before_serving(campaign: Campaign, tmp_path: Path) -> None:
    result = Campaign(tmp_path / "nowhere")("serve", "--port", "0")
    assert result.exit_code == 1
    assert result.stderr == (f"campaign: error: {tmp_path / 'nowhere'}: no campaign.toml here: run 'campaign init "
                             "DIR' or pass --workspace DIR\n")


def test_help_has_examples(campaign: Campaign) -> None:
    result = campaign("serve", "--help")
    assert result.exit_code == 0
    assert "campaign serve --port 8080" in result.stdout
    assert "uvicorn --factory pipeline.web.app:create_app" in result.stdout
