"""Where messages go: a Maildir (the default; mail clients open it) or an SMTP server.

Every transport hands out connections, one per sending slot, that send the bytes of one message
to one recipient, or raise what the server said: at once (send) or as steps (steps).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from pipeline.delivery.transports.stepwise import Steps
from pipeline.errors import TransportError
from pipeline.redact import redact_url


class TemporaryFailure(Exception):
    """The server said "not now" (4xx) or the connection dropped: try again later."""

    def __init__(self, reply: str, reconnect: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.reconnect = reconnect


class PermanentFailure(Exception):
    """The server refused the message for good (5xx); `bounce` when it refused the mailbox itself."""

    def __init__(self, reply: str, bounce: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.bounce = bounce


class UncertainDelivery(Exception):
    """The connection broke after the whole message was sent, before the server's answer: it may
    have arrived. Like a crash mid-send, the delivery becomes `unknown`, never resent by itself."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Connection(Protocol):
    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        """Deliver one message; returns the server's final reply."""

    def steps(self, envelope_from: str, recipient: str, message: bytes) -> Steps:
        """The same as steps that say which socket they wait for (transports.stepwise), so one
        thread can run many connections."""

    def close(self) -> None:
        ...


ConnectionFactory = Callable[[], Connection]


def open_transport(url: str, workspace_root: Path) -> tuple[str, ConnectionFactory]:
    """A description for messages and a factory of connections, from a transport URL.

    Relative paths in the URL (a Maildir, a ?cafile=) are in the workspace.
    """
    from pipeline.delivery.transports.maildir import MaildirConnection
    from pipeline.delivery.transports.smtp import SmtpConnection, SmtpSettings

    if url.startswith("maildir:"):
        path = Path(unquote(url[len("maildir:"):]))
        if not str(path):
            raise TransportError("maildir: needs a folder, like maildir:outbox")
        folder = (path if path.is_absolute() else workspace_root / path).resolve()
        return f"the Maildir {folder} (new messages in {folder / 'new'})", lambda: MaildirConnection(folder)
    if url.partition(":")[0].lower() in ("smtp", "smtps"):
        settings = SmtpSettings.from_url(url, workspace_root)
        context = settings.tls_context()  # one per transport: loading the trust store is not free
        return settings.describe(), lambda: SmtpConnection(settings, context)
    raise TransportError(redact_url(f"unknown transport {url!r}: use maildir:PATH, smtp://host[:port] "
                                    "or smtps://host[:port]"))
