"""The DevTools client against a real headless Chromium, and against stand-ins that die or never answer."""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import BrowserError
from pipeline.web.browser import Chromium, headless_chromium, screenshot_html
from tests.conftest import needs_chromium
from tests.pages import png_size

NOT_FOUND = "Chromium not found: install Debian's chromium (apt-get install chromium)"
DARK = "matchMedia('(prefers-color-scheme: dark)').matches"


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Chromium]:
    with headless_chromium() as opened:
        yield opened


def page(tmp_path: Path, html: str) -> str:
    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    return path.as_uri()


def fake_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A `chromium` first on PATH that runs script; it notes its pid and profile folder in tmp_path."""
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "chromium"
    notes = f'echo $$ > "{tmp_path}/pid"\nfor a; do case "$a" in --user-data-dir=*) echo "${{a#*=}}" > "{tmp_path}/profile";; esac; done\n'
    fake.write_text(f"#!/bin/sh\n{notes}{script}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def assert_cleaned_up(notes: Path) -> None:
    """The process the fake noted has been stopped and reaped, and its profile folder is gone."""
    with pytest.raises(ProcessLookupError):
        os.kill(int((notes / "pid").read_text()), 0)
    profile = Path((notes / "profile").read_text().strip())
    assert profile.name == "profile"
    assert not profile.parent.exists()


# The real thing.

def test_a_screenshot_is_a_png_of_exactly_the_viewport_even_below_the_headless_minimum(
        browser: Chromium, tmp_path: Path) -> None:
    browser.set_viewport(375, 240)
    browser.open(page(tmp_path, "<body style='margin:0;background:#123'><p>Hello</p></body>"))
    assert browser.evaluate("[innerWidth, innerHeight]") == [375, 240]
    assert png_size(browser.screenshot()) == (375, 240)


@needs_chromium
def test_screenshot_html_is_as_wide_as_asked_and_as_tall_as_the_content() -> None:
    html = "<html><body style='margin:0'><div style='height:1234px;background:#c33'>tall</div></body></html>"
    assert png_size(screenshot_html(html, 320)) == (320, 1234)
    assert png_size(screenshot_html(html, 600)) == (600, 1234)


def test_evaluate_returns_values_and_awaits_promises(browser: Chromium, tmp_path: Path) -> None:
    browser.open(page(tmp_path, "<title>Back pain</title><p id=p>Hi Alex,</p>"))
    assert browser.evaluate("document.title") == "Back pain"
    assert browser.evaluate("document.getElementById('p').textContent") == "Hi Alex,"
    assert browser.evaluate("1 + 1") == 2
    assert browser.evaluate("[1.5, 'two', true, null]") == [1.5, "two", True, None]
    assert browser.evaluate("({nested: {list: [1, 2]}})") == {"nested": {"list": [1, 2]}}
    assert browser.evaluate("undefined") is None
    assert browser.evaluate("new Promise(done => setTimeout(() => done('later'), 10))") == "later"


def test_a_javascript_error_is_a_browser_error_with_its_text(browser: Chromium) -> None:
    with pytest.raises(BrowserError) as thrown:
        browser.evaluate("throw new Error('no such frame')")
    assert str(thrown.value) == "JavaScript error: Error: no such frame"
    with pytest.raises(BrowserError) as missing:
        browser.evaluate("document.querySelector('#nothing').click()")
    assert str(missing.value).startswith("JavaScript error: TypeError: Cannot read properties of null")
    with pytest.raises(BrowserError) as rejected:
        browser.evaluate("Promise.reject(new RangeError('too far'))")
    assert str(rejected.value) == "JavaScript error: RangeError: too far"
    assert browser.evaluate("'still working'") == "still working"


def test_a_page_that_cannot_be_opened_says_why(browser: Chromium, tmp_path: Path) -> None:
    url = (tmp_path / "missing.html").as_uri()
    with pytest.raises(BrowserError) as caught:
        browser.open(url)
    assert str(caught.value) == f"Chromium could not open {url}: net::ERR_FILE_NOT_FOUND"


def test_dark_emulation_changes_prefers_color_scheme(browser: Chromium, tmp_path: Path) -> None:
    browser.open(page(tmp_path, "<style>body { background: #fff } @media (prefers-color-scheme: dark) "
                                "{ body { background: #000 } }</style><p>text</p>"))
    background = "getComputedStyle(document.body).backgroundColor"
    browser.emulate_color_scheme("dark")
    assert (browser.evaluate(DARK), browser.evaluate(background)) == (True, "rgb(0, 0, 0)")
    browser.emulate_color_scheme("light")
    assert (browser.evaluate(DARK), browser.evaluate(background)) == (False, "rgb(255, 255, 255)")
    with pytest.raises(ValueError):
        browser.emulate_color_scheme("dim")  # type: ignore[arg-type]


def test_ctrl_c_stops_chromium_and_deletes_its_profile(chromium: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    notes = fake_chromium(tmp_path, monkeypatch, f'exec "{chromium}" "$@"')
    with pytest.raises(KeyboardInterrupt), headless_chromium() as opened:
        assert opened.evaluate("40 + 2") == 42
        raise KeyboardInterrupt
    assert_cleaned_up(notes)


def test_a_chromium_killed_midway_is_a_clean_error(chromium: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    notes = fake_chromium(tmp_path, monkeypatch, f'exec "{chromium}" "$@"')
    with headless_chromium() as opened:
        os.kill(int((notes / "pid").read_text()), signal.SIGKILL)
        with pytest.raises(BrowserError) as caught:
            opened.evaluate("1")
        assert str(caught.value) == "Chromium stopped before sending an answer to Runtime.evaluate (exit code -9)"
    assert_cleaned_up(notes)


@needs_chromium
def test_a_page_or_script_that_never_finishes_times_out_and_chromium_goes_on(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent, Chromium(timeout=1) as opened:
        # The kernel accepts the connection; nobody ever answers, so the image keeps the page loading.
        url = page(tmp_path, f"<img src='http://127.0.0.1:{silent.getsockname()[1]}/pixel.png'>")
        with pytest.raises(BrowserError) as loading:
            opened.open(url)
        assert str(loading.value) == f"Chromium did not send the load event of {url} within 1 s"
        with pytest.raises(BrowserError) as waiting:
            opened.evaluate("new Promise(() => {})")
        assert str(waiting.value) == "Chromium did not send an answer to Runtime.evaluate within 1 s"
        assert opened.evaluate("document.images.length") == 1


# Stand-ins: no Chromium, one that fails to start, one that never answers.

def test_without_chromium_on_path_the_error_says_what_to_install(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrowserError) as caught:
        Chromium()
    assert str(caught.value) == NOT_FOUND
    with pytest.raises(BrowserError) as shot:
        screenshot_html("<p>hello</p>", 600)
    assert str(shot.value) == NOT_FOUND


def test_a_chromium_that_exits_at_start_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes = fake_chromium(tmp_path, monkeypatch, "echo 'noise' >&2\n"
                          "echo 'chromium: error while loading shared libraries: libnss3.so' >&2\nexit 127")
    with pytest.raises(BrowserError) as caught:
        Chromium()
    assert str(caught.value) == ("Chromium stopped before sending an answer to Target.createTarget "
                                 "(exit code 127: chromium: error while loading shared libraries: libnss3.so)")
    assert_cleaned_up(notes)


def test_a_chromium_that_never_answers_times_out_and_is_stopped(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    notes = fake_chromium(tmp_path, monkeypatch, "exec sleep 600")  # keeps the pipes open, says nothing
    began = time.monotonic()
    with pytest.raises(BrowserError) as caught:
        Chromium(timeout=0.1, start_timeout=0.8)
    waited = time.monotonic() - began
    # Starting has its own budget: a cold first start may take longer than any one command.
    assert str(caught.value) == "Chromium did not send an answer to Target.createTarget within 0.8 s"
    assert waited >= 0.8
    assert_cleaned_up(notes)
