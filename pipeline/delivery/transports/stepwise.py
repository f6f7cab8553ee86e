"""A transaction on a connection as steps: it says which socket it waits for instead of blocking.

The sending loop runs every connection of a run in one thread (delivery.multiplex): each step
yields a Wait, and whoever runs the steps resumes them once the socket is ready (or throws
TimeoutError into them once the Wait's time is up). `drive` runs steps to the end on their own,
blocking, for a caller with one message to send.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Generator
from typing import NamedTuple


class Wait(NamedTuple):
    fileno: int
    write: bool  # waits to write, else to read
    timeout: float  # seconds, after which TimeoutError is thrown into the steps


Steps = Generator[Wait, None, str]  # ends with the server's final reply


def drive(steps: Steps) -> str:
    """Run steps to their end in this thread: the result, or what they raised."""
    try:
        wait = next(steps)
        while True:
            poller = select.poll()  # not select(): a long-running process may hold fds past 1024
            poller.register(wait.fileno, select.POLLOUT if wait.write else select.POLLIN)
            ready = poller.poll(wait.timeout * 1000)
            wait = steps.send(None) if ready else steps.throw(TimeoutError("timed out"))
    except StopIteration as end:
        result: str = end.value
        return result


class Channel:
    """A connected socket (plain or TLS) made non-blocking, with a buffer of what it has read."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.fileno = sock.fileno()
        self.inbox = bytearray()
        self.ended = ""  # why this side closed the session, once it has
        sock.setblocking(False)

    def write(self, data: bytes) -> Generator[Wait, None, None]:
        self._open()
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except (BlockingIOError, ssl.SSLWantWriteError):
                yield Wait(self.fileno, True, self.timeout)
            except ssl.SSLWantReadError:  # TLS renegotiating: it must read before it can write
                yield Wait(self.fileno, False, self.timeout)

    def line(self, longest: int) -> Generator[Wait, None, bytes]:
        """The next line read, with its line end; b"" when the peer closed the connection first."""
        self._open()
        scanned = 0
        while (end := self.inbox.find(b"\n", scanned)) < 0:
            scanned = len(self.inbox)
            if scanned > longest:
                raise ConnectionError(f"a reply line longer than {longest} bytes")
            # What was asked for has only just been sent: wait first rather than make a read that
            # finds nothing, unless TLS already holds decrypted bytes the socket will not signal.
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                yield Wait(self.fileno, False, self.timeout)
            try:
                chunk = self.sock.recv(1 << 16)
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            except ssl.SSLWantWriteError:
                yield Wait(self.fileno, True, self.timeout)
                continue
            if not chunk:
                return b""
            self.inbox += chunk
        found = bytes(self.inbox[:end + 1])
        del self.inbox[:end + 1]
        return found

    def close(self, why: str) -> None:
        """End the session from this side; whatever comes next is told `why`."""
        self.ended = why
        self.sock.close()

    def _open(self) -> None:
        if self.ended:
            raise ConnectionError(self.ended)

    def blocking(self) -> None:
        """Back to a blocking socket with its timeout, for smtplib's own commands (QUIT)."""
        self.sock.settimeout(self.timeout)
