"""Deliver into a Maildir: the default outbox, which any mail client can open."""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path

from pipeline.errors import TransportError

_LOCK = threading.Lock()


class MaildirConnection:
    def __init__(self, folder: Path) -> None:
        try:
            self.box = mailbox.Maildir(folder, create=True)
        except OSError as exc:
            raise TransportError(f"cannot open the Maildir ({exc.strerror})", where=folder) from None
        self.folder = folder

    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        # Delivered-To and Return-Path are what a receiving server would add; clients show them.
        delivered = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {recipient}\r\n".encode()
        with _LOCK:  # Maildir's unique names come from a shared counter
            key = self.box.add(delivered + message)
        return f"250 delivered to {self.folder / 'new' / key}"

    def close(self) -> None:
        pass
