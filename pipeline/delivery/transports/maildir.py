"""Deliver into a Maildir: the default outbox, which any mail client can open."""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path

from pipeline.delivery.transports.stepwise import Steps
from pipeline.errors import TransportError

_LOCK = threading.Lock()
_PARTS = ("tmp", "new", "cur")


class MaildirConnection:
    def __init__(self, folder: Path) -> None:
        try:
            # mailbox makes tmp/, new/ and cur/ only for a folder that does not exist yet; an empty
            # folder made beforehand (a mounted volume, mkdir by hand) needs them too.
            for part in _PARTS:
                (folder / part).mkdir(parents=True, exist_ok=True)
            self.box = mailbox.Maildir(folder, create=False)
        except OSError as exc:
            raise TransportError(f"cannot open the Maildir ({exc.strerror or exc})", where=folder) from None
        self.folder = folder

    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        # Delivered-To and Return-Path are what a receiving server would add; clients show them.
        delivered = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {recipient}\r\n".encode()
        try:
            with _LOCK:  # Maildir's unique names come from a shared counter
                key = self.box.add(delivered + message)
        except OSError as exc:
            # The message is written in tmp/ and only then moved into new/, where clients look, and
            # mailbox removes what it wrote when a step fails: nothing was delivered.
            raise TransportError(f"cannot write to the Maildir ({exc.strerror or exc})", where=self.folder) from None
        return f"250 delivered to {self.folder / 'new' / key}"

    def steps(self, envelope_from: str, recipient: str, message: bytes) -> Steps:
        """A file written never waits on a socket: all in one step."""
        return self.send(envelope_from, recipient, message)
        yield  # what makes this a generator, like every connection's steps

    def close(self) -> None:
        pass
