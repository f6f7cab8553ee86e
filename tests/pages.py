"""Talking to a running server as a browser would: plain HTTP requests, an event stream, raw sockets."""

from __future__ import annotations

import http.client
import json
import queue
import socket
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer to check, as any other


_opener = urllib.request.build_opener(_NoRedirects)


def fetch(url: str, method: str = "GET", body: bytes | None = None, content_type: str | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    """Send one request (GET unless told); an error status is an answer to check, not an exception.
    headers may set any header, Host included."""
    sent = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
    request = urllib.request.Request(url, data=body, method=method, headers=sent)
    try:
        with _opener.open(request, timeout=10) as response:
            return Reply(response.status, response.headers["Content-Type"], dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers["Content-Type"], dict(exc.headers), exc.read())


def post_form(url: str, fields: list[tuple[str, str]], headers: dict[str, str] | None = None) -> Reply:
    """POST fields as a browser submits a form: application/x-www-form-urlencoded."""
    return fetch(url, "POST", urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded",
                 headers)


def wait_for(check: Callable[[], T], what: str, timeout: float = 5.0) -> T:
    """Poll check until it returns something true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class EventStream:
    """The page's server-sent event stream, read one event at a time.

    A thread reads the lines, so waiting for an event can time out and be tried again; a
    socket that timed out in the middle of a read could not be read any more.
    """

    def __init__(self, url: str) -> None:
        """url: the page's, whose stream is at events beside it."""
        parts = urlsplit(url)
        assert parts.hostname is not None
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.connection.request("GET", parts.path + "events", headers={"Accept": "text/event-stream"})
        self.socket = self.connection.sock
        self.response = self.connection.getresponse()
        assert self.socket is not None
        self.socket.settimeout(None)
        self.retry: int | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while line := self.response.readline():
                self.lines.put(line.decode("utf-8"))
        except (OSError, ValueError, http.client.HTTPException):
            pass  # cut off by close()
        self.lines.put(None)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
        except OSError:
            pass  # the server has already gone
        self.reader.join(5)  # the response belongs to the reading thread until it ends
        self.response.close()
        self.connection.close()

    def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        """The next event's name and data; TimeoutError when none comes in time, EOFError at the end."""
        deadline = time.monotonic() + timeout
        name, data = "message", ""
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise TimeoutError(f"no event within {timeout}s") from None
            if line is None:
                raise EOFError("the server closed the event stream")
            line = line.rstrip("\n")
            if line.startswith("retry: "):
                self.retry = int(line.removeprefix("retry: "))
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data += line.removeprefix("data: ")
            elif line == "" and data:
                return name, json.loads(data)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, which the format puts first."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height
