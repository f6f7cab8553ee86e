"""Headless Chromium driven over the DevTools protocol: emails pictured exactly as a browser lays them out.

Started with --remote-debugging-pipe, Chromium reads NUL-terminated JSON commands on its fd 3 and
writes NUL-terminated replies and events on its fd 4. Two pipes and the standard library are the
whole client: no WebDriver, no chromedriver that must match the browser's version, no websocket.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

from pipeline.errors import BrowserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install Debian's chromium (apt-get install chromium)"
# Quiet and self-contained: no profile of the user's, no updates, no sign-in, no first-run pages.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--remote-debugging-pipe")
TIMEOUT = 30.0  # seconds any one command may take before Chromium counts as hung
# A first start after installing reads the browser and its fonts from a cold disk: on a busy
# machine that alone has taken over 30 s, so starting gets a budget of its own.
START_TIMEOUT = 120.0
_LOAD_HEIGHT = 100  # layout height while measuring: content taller than this sets the real height
# subprocess can hand a child a pipe only as its fd 0, 1 or 2, and Chromium wants its pipes as 3 and 4:
# a shell moves them there and then becomes Chromium (exec), so no extra process stays behind.
_SPAWN = 'exec "$@" 3<&0 4>&1 0</dev/null 1>&2'
_READ_SIZE = 1 << 20


def find_chromium() -> str:
    """The first Chromium or Chrome on PATH."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(f"Chromium not found: {INSTALL_HINT}")


class _Wait(NamedTuple):
    what: str  # what is awaited, for the error: "an answer to Page.navigate"
    deadline: float  # time.monotonic() by which it must have come
    budget: float  # the seconds it was given


class Chromium:
    """One headless Chromium with one page, stopped and its profile deleted by close().

    Starting waits at most `start_timeout` seconds and every command after it at most `timeout`,
    so a Chromium that dies or hangs is a BrowserError rather than a stuck command. One caller at
    a time: it is not thread-safe.
    """

    def __init__(self, timeout: float = TIMEOUT, start_timeout: float = START_TIMEOUT) -> None:
        self.timeout = timeout
        self.start_timeout = start_timeout
        binary = find_chromium()
        self._folder = tempfile.TemporaryDirectory(prefix="campaign-chromium-", ignore_cleanup_errors=True)
        self._log = Path(self._folder.name) / "chromium.log"
        self._buffer = bytearray()
        self._replies: dict[int, dict[str, Any]] = {}
        self._seen: set[str] = set()  # page events since the last clear, by method name
        self._next_id = 0
        self._session: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._commands = self._answers = -1
        try:
            self._start(binary, Path(self._folder.name) / "profile")
        except BaseException:  # Ctrl-C while starting must not leave a Chromium behind either
            self.close()
            raise

    def _start(self, binary: str, profile: Path) -> None:
        their_commands, self._commands = os.pipe()
        self._answers, their_answers = os.pipe()
        try:
            with self._log.open("wb") as log:
                # A session of its own: Ctrl-C in the terminal reaches us, and close() stops it in order.
                self._process = subprocess.Popen(
                    ["/bin/sh", "-c", _SPAWN, "sh", binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                    stdin=their_commands, stdout=their_answers, stderr=log, start_new_session=True)
        except OSError as exc:
            raise BrowserError(f"Chromium did not start ({exc.strerror}); {INSTALL_HINT}") from None
        finally:
            os.close(their_commands)  # only Chromium's copies stay open, so its exit reads as end of file
            os.close(their_answers)
        os.set_blocking(self._commands, False)
        target = self._send("Target.createTarget", {"url": "about:blank"}, self.start_timeout)["targetId"]
        self._session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                   self.start_timeout)["sessionId"]
        self._send("Page.enable")  # for the load event open() waits for

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop Chromium and delete its profile; safe to call twice and after Chromium died."""
        if self._commands >= 0:
            os.close(self._commands)  # end of file on its command pipe: Chromium quits by itself
            self._commands = -1
        if self._process is not None:
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass
            try:  # its helper processes share its session and process group
                os.killpg(self._process.pid, signal.SIGKILL)
            except OSError:
                pass  # all gone already
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self._process = None
        if self._answers >= 0:
            os.close(self._answers)
            self._answers = -1
        self._folder.cleanup()

    def set_viewport(self, width: int, height: int) -> None:
        """An exact viewport: a headless window cannot be made narrower than 500 px any other way."""
        self._send("Emulation.setDeviceMetricsOverride",
                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def emulate_color_scheme(self, scheme: Literal["dark", "light"]) -> None:
        """Answer prefers-color-scheme as a reader's system set to dark or light mode would."""
        if scheme not in ("dark", "light"):
            raise ValueError(f"colour scheme must be 'dark' or 'light', not {scheme!r}")
        self._send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})

    def open(self, url: str) -> None:
        """Navigate to url and wait for its load event (images and frames included)."""
        self._seen.clear()
        reply = self._send("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise BrowserError(f"Chromium could not open {url}: {reply['errorText']}")
        if "loaderId" in reply:  # a jump within the same document loads nothing
            wait = self._wait(f"the load event of {url}", self.timeout)
            while "Page.loadEventFired" not in self._seen:
                self._pump(wait)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page, promises awaited; a throw is a BrowserError."""
        reply = self._send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        details = reply.get("exceptionDetails")
        if details is not None:
            thrown = details.get("exception") or {}
            text = thrown.get("description") or thrown.get("value") or details.get("text") or "unknown error"
            raise BrowserError(f"JavaScript error: {str(text).splitlines()[0]}")
        return reply["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        return base64.b64decode(self._send("Page.captureScreenshot", {"format": "png"})["data"])

    # The protocol.

    def _send(self, method: str, params: dict[str, Any] | None = None,
              budget: float | None = None) -> dict[str, Any]:
        if self._commands < 0:
            raise BrowserError(f"Chromium is closed; cannot run {method}")
        self._next_id += 1
        number = self._next_id
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if self._session is not None:
            message["sessionId"] = self._session
        wait = self._wait(f"an answer to {method}", self.timeout if budget is None else budget)
        self._write(json.dumps(message).encode() + b"\0", wait)
        while number not in self._replies:
            self._pump(wait)
        reply = self._replies.pop(number)
        if "error" in reply:
            raise BrowserError(f"Chromium refused {method}: {reply['error'].get('message', reply['error'])}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    @staticmethod
    def _wait(what: str, budget: float) -> _Wait:
        return _Wait(what, time.monotonic() + budget, budget)

    def _write(self, data: bytes, wait: _Wait) -> None:
        # Non-blocking, so a Chromium that stopped reading cannot hold us past the deadline.
        view = memoryview(data)
        while view:
            if not select.select([], [self._commands], [], self._left(wait))[1]:
                continue
            try:
                view = view[os.write(self._commands, view):]
            except BrokenPipeError:
                raise self._gone(wait.what) from None

    def _pump(self, wait: _Wait) -> None:
        """Read one message: a reply is kept for its command, a page event is noted by name."""
        scanned = 0
        while (end := self._buffer.find(b"\0", scanned)) < 0:
            scanned = len(self._buffer)
            if not select.select([self._answers], [], [], self._left(wait))[0]:
                continue
            chunk = os.read(self._answers, _READ_SIZE)
            if not chunk:
                raise self._gone(wait.what)
            self._buffer += chunk
        message = json.loads(self._buffer[:end])
        del self._buffer[:end + 1]
        if "id" in message:
            self._replies[message["id"]] = message
        elif message.get("sessionId") == self._session and "method" in message:
            self._seen.add(message["method"])

    @staticmethod
    def _left(wait: _Wait) -> float:
        left = wait.deadline - time.monotonic()
        if left <= 0:
            raise BrowserError(f"Chromium did not send {wait.what} within {wait.budget:g} s")
        return left

    def _gone(self, waiting_for: str) -> BrowserError:
        """Chromium closed its end of the pipe: say how it ended, and why if it said so."""
        assert self._process is not None
        try:
            code = self._process.wait(5)
        except subprocess.TimeoutExpired:
            return BrowserError(f"Chromium closed its DevTools pipe before sending {waiting_for}")
        reason = f"exit code {code}"
        if code > 0:  # it quit by itself (a missing library, a bad flag): its last word says why
            said = [line.strip() for line in self._log.read_text(errors="replace").splitlines() if line.strip()]
            reason += f": {said[-1][:200]}" if said else ""
        return BrowserError(f"Chromium stopped before sending {waiting_for} ({reason})")


@contextmanager
def headless_chromium(timeout: float = TIMEOUT, start_timeout: float = START_TIMEOUT) -> Iterator[Chromium]:
    """A fresh headless Chromium with a throwaway profile, stopped and cleaned up afterwards."""
    with Chromium(timeout, start_timeout) as browser:
        yield browser


def screenshot_html(html: str, width: int, beside: dict[str, bytes] | None = None) -> bytes:
    """A PNG of an HTML document laid out width CSS pixels wide, as tall as its content; `beside`
    holds files its relative addresses name (assets/NAME: bytes)."""
    with tempfile.TemporaryDirectory(prefix="campaign-shot-") as folder, headless_chromium() as browser:
        page = Path(folder) / "email.html"
        page.write_text(html, encoding="utf-8")
        for relative, data in (beside or {}).items():
            path = Path(folder, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        browser.set_viewport(width, _LOAD_HEIGHT)
        browser.open(page.as_uri())
        height = browser.evaluate(
            "Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0)")
        browser.set_viewport(width, max(int(height), 1))
        return browser.screenshot()
