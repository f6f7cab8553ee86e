"""`campaign preview` as a user runs it: a real process serving HTTP until Ctrl-C, and screenshots."""

from __future__ import annotations

import email
import email.policy
import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import Campaign, edit, needs_chromium
from tests.pages import EventStream, fetch, png_size, wait_for

STARTED = re.compile(r"Previewing back-pain at (http://127\.0\.0\.1:(\d+)/p/[\w-]{24}/) \(Ctrl-C to stop\)\n")


@contextmanager
def preview_process(root: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "--workspace", str(root), "preview", "back-pain",
                                "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    ready, _, _ = select.select([process.stderr], [], [], 15)
    assert ready, "the preview printed nothing"
    return process.stderr.readline()


def test_the_command_serves_until_ctrl_c_and_then_stops_cleanly(campaign: Campaign) -> None:
    with preview_process(campaign.root) as process:
        started = STARTED.fullmatch(first_line(process))
        assert started, "no URL on stderr"
        url, port = started.group(1), int(started.group(2))
        page = fetch(url)
        assert (page.status, page.content_type) == (200, "text/html; charset=utf-8")
        # Only at that URL: not without its secret, and not under another site's name.
        assert fetch(f"http://127.0.0.1:{port}/status").status == 403
        assert fetch(url + "status", headers={"Host": f"evil.example:{port}"}).status == 421
        assert fetch(url + "status").json()["error"] is None
        assert "Hi Alex," in fetch(url + "email.txt").text
        with EventStream(url) as events:  # an open stream must not hold the shutdown up
            assert events.next()[1]["version"] == 1
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=10)
        assert (process.returncode, stdout, stderr) == (0, "", "Preview stopped.\n")
    with socket.create_server(("127.0.0.1", port)):
        pass  # the port is free again


def test_open_starts_the_browser_on_the_preview(campaign: Campaign, tmp_path: Path) -> None:
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{opened}"\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    with preview_process(campaign.root, "--open", env={"BROWSER": str(browser)}) as process:
        started = STARTED.fullmatch(first_line(process))
        assert started
        wait_for(opened.exists, "the browser to be started")
        wait_for(lambda: opened.read_text() == started.group(1), "the browser to get the URL")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_a_port_or_address_it_cannot_listen_on_is_a_one_line_error(campaign: Campaign) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = campaign("preview", "back-pain", "--port", str(port))
    assert result.exit_code == 1
    assert result.stderr == (f"campaign: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
                             "choose another with --host or --port\n")
    elsewhere = campaign("preview", "back-pain", "--host", "192.0.2.1", "--port", "0")
    assert elsewhere.exit_code == 1
    assert elsewhere.stderr == ("campaign: error: cannot listen on 192.0.2.1:0: Cannot assign requested address; "
                                "choose another with --host or --port\n")


def test_unknown_campaigns_and_recipients_fail_before_serving(campaign: Campaign) -> None:
    ghost = campaign("preview", "ghost")
    assert ghost.exit_code == 1
    assert ghost.stderr == (f"campaign: error: no campaign 'ghost' in {campaign.root / 'campaigns'} "
                            "(known: back-pain)\n")
    nobody = campaign("preview", "back-pain", "--as", "nobody@example.com", "--port", "0")
    assert nobody.exit_code == 1
    assert nobody.stderr == ("campaign: error: no recipient 'nobody@example.com' to preview as "
                             "(known: sample <alex.rivera@example.com>)\n")


def test_width_goes_with_screenshot(campaign: Campaign) -> None:
    result = campaign("preview", "back-pain", "--width", "375")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: --width goes with --screenshot\n")


def test_help_has_an_example(campaign: Campaign) -> None:
    result = campaign("preview", "--help")
    assert result.exit_code == 0
    assert "campaign preview back-pain --screenshot phone.png --width 375" in result.stdout


@needs_chromium
@pytest.mark.parametrize(("args", "width"), [(["--width", "375"], 375), ([], 600)])
def test_screenshot_writes_a_png_of_the_requested_width(campaign: Campaign, tmp_path: Path, args: list[str],
                                                        width: int) -> None:
    out = tmp_path / "shots" / "email.png"
    result = campaign("preview", "back-pain", "--screenshot", str(out), *args)
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"{out}\n", "")
    shot_width, shot_height = png_size(out.read_bytes())
    assert shot_width == width
    assert shot_height > 1500  # the whole email, not one window's worth
    assert [p.name for p in out.parent.iterdir()] == ["email.png"]


def test_screenshot_of_a_broken_campaign_writes_nothing(campaign: Campaign, tmp_path: Path) -> None:
    edit(campaign.root / "templates" / "partials" / "footer.mjml.j2", "{{ brand.name }}</strong>",
         "{{ brand.name | shout }}</strong>")
    out = tmp_path / "email.png"
    result = campaign("preview", "back-pain", "--screenshot", str(out))
    assert result.exit_code == 1
    assert result.stderr == "campaign: error: templates/partials/footer.mjml.j2:12: No filter named 'shout'.\n"
    assert not out.exists()


def test_screenshot_without_chromium_says_what_to_install(campaign: Campaign, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "email.png"
    result = campaign("preview", "back-pain", "--screenshot", str(out))
    assert result.exit_code == 1
    assert result.stderr == "campaign: error: Chromium not found: install Debian's chromium (apt-get install chromium)\n"
    assert not out.exists()


@needs_chromium
def test_real_subscribers_of_the_campaigns_segment_are_offered(campaign: Campaign, tmp_path: Path) -> None:
    from pipeline.cli.context import State
    from pipeline.web.preview import Preview, campaign_recipients

    assert campaign("subscribers", "add", "ana@example.com", "--first-name", "Ana", "--tag", "back-pain").exit_code == 0
    assert campaign("subscribers", "add", "ben@example.com", "--tag", "sleep").exit_code == 0
    state = State(campaign.root, None, None)
    offered = campaign_recipients(state.store, state.workspace, "back-pain", "ben@example.com")
    assert [r.label for r in offered] == ["sample", "ben@example.com", "Ana <ana@example.com>"]
    assert offered[2].values["first_name"] == "Ana"
    copy = Preview(state.workspace, "back-pain", lambda: offered).state.copy(2)
    assert 'href="https://willowcreek-acupuncture.example/email/unsubscribe/' in copy.html
    assert "Hi Ana," in copy.text
    out = tmp_path / "ana.png"
    result = campaign("preview", "back-pain", "--screenshot", str(out), "--as", "ana@example.com")
    assert (result.exit_code, result.stdout) == (0, f"{out}\n")


def html_and_text(message: bytes) -> tuple[str, str]:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    text, html = parsed.iter_parts()
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return html.get_content(), text.get_content()


def test_preview_render_as_test_send_and_send_give_a_reader_the_same_copy(campaign: Campaign) -> None:
    assert campaign("subscribers", "add", "ana@example.com", "--first-name", "Ana", "--tag", "back-pain").exit_code == 0
    outbox = campaign.root / "outbox" / "new"

    assert campaign("render", "back-pain", "--as", "ana@example.com").exit_code == 0
    rendered = ((campaign.root / "out/back-pain/personal.html").read_text(encoding="utf-8"),
                (campaign.root / "out/back-pain/personal.txt").read_text(encoding="utf-8"))

    assert campaign("test-send", "back-pain", "--to", "ana@example.com").exit_code == 0
    [test_copy] = list(outbox.iterdir())
    tested = html_and_text(test_copy.read_bytes())
    test_copy.unlink()

    assert campaign("send", "back-pain", "--yes").exit_code == 0
    [sent_copy] = list(outbox.iterdir())
    sent = html_and_text(sent_copy.read_bytes())

    with preview_process(campaign.root, "--as", "ana@example.com") as process:
        url = re.search(r"(http://\S+/)", first_line(process))
        assert url is not None
        previewed = (fetch(url.group(1) + "email.html").text, fetch(url.group(1) + "email.txt").text)

    assert "Hi Ana," in sent[0] and "utm_campaign=back-pain" in sent[0] and "/unsubscribe/sample" not in sent[0]
    assert previewed == sent
    assert rendered == sent
    assert tested == sent


@needs_chromium
def test_a_screenshot_path_that_cannot_be_written_is_one_line(campaign: Campaign) -> None:
    result = campaign("preview", "back-pain", "--screenshot", "/proc/x.png")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("campaign: error: /proc/x.png: cannot write: ")
    assert result.stderr.count("\n") == 1
