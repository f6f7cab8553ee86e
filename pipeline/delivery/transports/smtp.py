"""SMTP and SMTPS with STARTTLS or TLS, AUTH, connection reuse and pipelining.

smtplib does the connecting, TLS and AUTH. Sending uses PIPELINING (RFC 2920) when the server
offers it: MAIL, RCPT and DATA go out together, so a message costs two round trips, not four.
"""

from __future__ import annotations

import ipaddress
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pipeline.delivery.transports import (
    PermanentFailure,
    TemporaryFailure,
    UncertainDelivery,
)
from pipeline.errors import TransportError

PASSWORD_ENV = "CAMPAIGN_SMTP_PASSWORD"
TIMEOUT = 60
# Replies to RCPT that mean the mailbox does not exist or refuses mail for good: a hard bounce.
BOUNCE_CODES = {550, 551, 553}


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool
    user: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        parts = urlsplit(url)
        if parts.password:
            raise TransportError(f"put the SMTP password in ${PASSWORD_ENV}, not in the URL")
        if not parts.hostname:
            raise TransportError(f"{parts.scheme}:// needs a host, like {parts.scheme}://mail.example.com")
        implicit = parts.scheme == "smtps"
        try:
            port = parts.port or (465 if implicit else 587)
        except ValueError:
            raise TransportError(f"bad port in {url!r}") from None
        user = unquote(parts.username) if parts.username else None
        password = os.environ.get(PASSWORD_ENV)
        if user and not password:
            raise TransportError(f"{url} names a user; set the password in ${PASSWORD_ENV}")
        return cls(parts.hostname, port, implicit, user, password)

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def describe(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        return f"{scheme}://{self.user + '@' if self.user else ''}{self.host}:{self.port}"


def _dot_stuffed(message: bytes) -> bytes:
    """Dot-stuffing (RFC 5321 4.5.2): a line starting with "." gets another.

    Base64 bodies never need it. A search for "\\r\\n." is slow in CPython (a partial match at
    every line end), while a message holds only a handful of dots: look at those instead.
    """
    at = message.find(b".")
    while at != -1:
        if at == 0 or message[at - 1] == 10:
            stuffed = message.replace(b"\r\n.", b"\r\n..")
            return b"." + stuffed if stuffed.startswith(b".") else stuffed
        at = message.find(b".", at + 1)
    return message


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


class SmtpConnection:
    """One authenticated SMTP session, reused for message after message."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.client = self._connect()
        self.pipelining = self.client.has_extn("pipelining")
        self.smtputf8 = self.client.has_extn("smtputf8")

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        try:
            if s.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=TIMEOUT, context=context)
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=TIMEOUT)
            # Commands are small writes answered at once; Nagle's algorithm would hold them back.
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.ehlo()
            if not s.implicit_tls:
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif not s.loopback:
                    client.close()
                    raise TransportError(f"{s.describe()} does not offer STARTTLS; refusing to send in the clear")
            if s.user:
                client.login(s.user, s.password or "")
            return client
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportError(f"{s.describe()} refused the login: {_reply(exc.smtp_code, exc.smtp_error)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportError(f"cannot connect to {s.describe()}: {exc}") from None

    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        options = ""
        if not recipient.isascii() or not envelope_from.isascii():
            if not self.smtputf8:
                raise PermanentFailure(f"the server does not offer SMTPUTF8, needed for {recipient}")
            options = " SMTPUTF8"
        try:
            return self._transact(envelope_from, recipient, message, options)
        except (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, OSError) as exc:
            raise TemporaryFailure(f"connection lost: {exc or type(exc).__name__}", reconnect=True) from None

    def _getreply(self) -> tuple[int, bytes]:
        """One (possibly multi-line) reply; smtplib's own reader costs more than the rest of a message."""
        client = self.client
        if client.file is None:
            client.file = client.sock.makefile("rb")
        lines = []
        while True:
            line = client.file.readline(8193)
            if not line:
                raise smtplib.SMTPServerDisconnected("the server closed the connection")
            lines.append(line[4:].strip())
            if line[3:4] != b"-":
                break
        try:
            return int(line[:3]), b" ".join(lines)
        except ValueError:
            return -1, b" ".join(lines)

    def _command_replies(self, envelope_from: str, recipient: str, options: str) -> list[tuple[int, bytes]]:
        client = self.client
        commands = [f"MAIL FROM:<{envelope_from}>{options}", f"RCPT TO:<{recipient}>", "DATA"]
        if self.pipelining:
            client.send("".join(c + "\r\n" for c in commands).encode("utf-8"))
            return [self._getreply() for _ in commands]
        replies = []
        for command in commands:
            client.send((command + "\r\n").encode("utf-8"))
            replies.append(self._getreply())
            if replies[-1][0] >= 400:
                break
        return replies

    def _transact(self, envelope_from: str, recipient: str, message: bytes, options: str) -> str:
        client = self.client
        replies = self._command_replies(envelope_from, recipient, options)
        steps = ("MAIL", "RCPT", "DATA")
        for step, (code, text) in zip(steps, replies):
            expected = 354 if step == "DATA" else 250
            if code == expected or (step == "RCPT" and code == 251):
                continue
            if code == 354:  # DATA was accepted although an earlier command failed: end it empty
                client.send(b".\r\n")
                self._getreply()
            self._reset()
            reply = _reply(code, text)
            if code == 421:
                raise TemporaryFailure(reply, reconnect=True)
            if 400 <= code < 500:
                raise TemporaryFailure(reply)
            raise PermanentFailure(reply, bounce=step == "RCPT" and code in BOUNCE_CODES)
        body = _dot_stuffed(message)
        # One write with its terminator: copying the body costs less than a second segment and wake-up.
        client.send(body + (b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
        try:
            code, text = self._getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise UncertainDelivery(f"the connection broke before the server confirmed the message: {exc}") from None
        reply = _reply(code, text)
        if code == 250:
            return reply
        if code == 421:
            raise TemporaryFailure(reply, reconnect=True)
        if 400 <= code < 500:
            raise TemporaryFailure(reply)
        raise PermanentFailure(reply)

    def _reset(self) -> None:
        try:
            self.client.rset()
        except smtplib.SMTPException:
            pass

    def close(self) -> None:
        try:
            self.client.quit()
        except (smtplib.SMTPException, OSError):
            self.client.close()
