"""SMTP and SMTPS with STARTTLS or TLS, AUTH, connection reuse and pipelining.

smtplib does the connecting, TLS and AUTH. Sending uses PIPELINING (RFC 2920) when the server
offers it: MAIL, RCPT and DATA go out together, so a message costs two round trips, not four.

The server's certificate is always verified. What to trust and which name to check can be said
in the URL (`?cafile=PATH`, `?servername=NAME`): a local Postfix with Debian's self-signed
"snakeoil" certificate on 127.0.0.1 is then verified as strictly as a public mail server.
"""

from __future__ import annotations

import ipaddress
import os
import smtplib
import socket
import ssl
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from pipeline.delivery.transports import (
    PermanentFailure,
    TemporaryFailure,
    UncertainDelivery,
)
from pipeline.delivery.transports.stepwise import Channel, Steps, Wait, drive
from pipeline.errors import TransportError
from pipeline.redact import redact_url

PASSWORD_ENV = "CAMPAIGN_SMTP_PASSWORD"
CAFILE_ENV = "CAMPAIGN_SMTP_CAFILE"
OPTIONS = {"cafile": "PATH", "servername": "NAME"}  # the query options of an smtp:// or smtps:// URL
TIMEOUT = 60
_LONGEST_LINE = 8192  # bytes in one reply line; RFC 5321 allows 512
# Replies to RCPT that mean the mailbox does not exist or refuses mail for good: a hard bounce.
BOUNCE_CODES = {550, 551, 553}
# Characters a user name keeps in describe(); everything else, "@" and ":" first, is percent-encoded
# so the description reads back as the same URL.
_USER_SAFE = "!$&'()*+,;="
# OpenSSL's verify results that mean "nobody you trust vouches for this certificate" and
# "the certificate is for another name": each has its own way out.
_UNTRUSTED = {2, 18, 19, 20, 21, 27}  # no issuer, self-signed (alone or in the chain), untrusted
_WRONG_NAME = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def _options(query: str) -> dict[str, str]:
    """The URL's query options, checked. Split by hand: parse_qsl would turn a "+" in a path into a space."""
    found: dict[str, str] = {}
    known = " and ".join(f"?{name}={value}" for name, value in OPTIONS.items())
    for item in query.split("&"):
        if not item:
            continue
        raw_name, _, raw_value = item.partition("=")
        name, value = unquote(raw_name), unquote(raw_value)
        if name not in OPTIONS:
            raise TransportError(f"unknown option {name!r} in the transport URL; the options are {known}")
        if name in found:
            raise TransportError(f"?{name}= is given twice in the transport URL")
        if not value:
            raise TransportError(f"?{name}= needs a value: ?{name}={OPTIONS[name]}")
        found[name] = value
    return found


def _checked_servername(name: str) -> str:
    # ssl refuses such names with a ValueError only when connecting; say so while reading the URL.
    try:
        if not name.startswith(".") and not any(c.isspace() or c in "/[]@" for c in name):
            name.encode("idna")
            return name
    except UnicodeError:
        pass
    raise TransportError(f"?servername={name} is not a host name (it should be the name in the server's certificate)")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool
    user: str | None
    password: str | None = field(repr=False)  # never in a repr, traceback or log either
    cafile: Path | None = None  # certificates to trust instead of the system's
    cafile_source: str = ""  # where cafile was named ("?cafile=" or the variable), for messages
    servername: str | None = None  # the name to check the certificate against instead of host
    # ?cafile= or ?servername= in the URL ask for verified TLS: STARTTLS is then required even on
    # loopback, where it is otherwise used only when offered. The environment variable only says
    # what to trust, so that one setting can serve every server.
    tls_asked: bool = False

    @classmethod
    def from_url(cls, url: str, workspace_root: Path) -> SmtpSettings:
        """Settings from an smtp:// or smtps:// URL; a relative ?cafile= is in the workspace."""
        try:
            parts = urlsplit(url)  # refuses an unclosed "[" or a bracketed host that is no IP address
        except ValueError as exc:
            raise TransportError(redact_url(f"bad transport URL {url!r}: {exc}")) from None
        if parts.password:
            raise TransportError(f"put the SMTP password in ${PASSWORD_ENV}, not in the URL")
        host = parts.netloc.rpartition("@")[2]
        if host.count(":") > 1 and not host.startswith("["):  # read as host "" and port ":1:25"
            raise TransportError(f"an IPv6 address goes in brackets, like {parts.scheme}://[::1]:25")
        try:
            hostname, port = parts.hostname, parts.port
        except ValueError:
            raise TransportError(redact_url(f"bad port in {url!r}")) from None
        if not hostname:
            raise TransportError(f"{parts.scheme}:// needs a host, like {parts.scheme}://mail.example.com")
        if ":" in hostname:  # IPv6; a zone is written %25eth0 in a URL (RFC 6874), eth0 to the socket
            hostname = unquote(hostname)
        implicit = parts.scheme == "smtps"
        user = unquote(parts.username) if parts.username else None
        password = os.environ.get(PASSWORD_ENV)
        if user and not password:
            raise TransportError(redact_url(f"{url} names a user; set the password in ${PASSWORD_ENV}"))
        options = _options(parts.query)
        cafile_text, source = options.get("cafile"), "?cafile="
        if cafile_text is None and os.environ.get(CAFILE_ENV):
            cafile_text, source = os.environ[CAFILE_ENV], f"${CAFILE_ENV}"
        cafile = None
        if cafile_text is not None:
            cafile = Path(cafile_text).expanduser()
            cafile = cafile if cafile.is_absolute() else workspace_root / cafile
        servername = _checked_servername(options["servername"]) if "servername" in options else None
        return cls(hostname, port or (465 if implicit else 587), implicit, user, password,
                   cafile=cafile, cafile_source=source if cafile else "", servername=servername,
                   tls_asked=bool(options))

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def describe(self) -> str:
        """The server as a URL for messages: user percent-encoded, IPv6 in brackets, no password."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = quote(self.user, safe=_USER_SAFE) + "@" if self.user else ""
        host = f"[{self.host.replace('%', '%25')}]" if ":" in self.host else self.host  # RFC 6874 zone
        return f"{scheme}://{user}{host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext:
        """The verifying TLS context for every connection; made once, so a bad cafile shows at once."""
        if self.cafile is None:
            return ssl.create_default_context()
        try:
            return ssl.create_default_context(cafile=self.cafile)
        except ssl.SSLError:
            raise TransportError(f"the file named by {self.cafile_source} holds no PEM certificate to trust",
                                 where=self.cafile) from None
        except OSError as exc:
            raise TransportError(f"cannot read the certificates named by {self.cafile_source} ({exc.strerror})",
                                 where=self.cafile) from None


def _verify_failure(exc: ssl.SSLCertVerificationError, s: SmtpSettings) -> str:
    """What failed in the certificate check, and the option that would fix it."""
    reason = str(exc.verify_message or exc.reason or exc).rstrip(".")
    if exc.verify_code in _WRONG_NAME:
        hint = (f"?servername={s.servername} must be a name the certificate holds" if s.servername else
                "if the certificate is for the server's host name, give that name as ?servername=NAME")
    elif exc.verify_code in _UNTRUSTED:
        hint = (f"{s.cafile} (from {s.cafile_source}) does not vouch for it" if s.cafile else
                f"trust the server's certificate or its CA with ?cafile=PATH or ${CAFILE_ENV}")
    else:
        hint = "see ?cafile=PATH and ?servername=NAME in the transport URL"
    return f"certificate verify failed: {reason}; {hint}"


def _connection_failure(exc: BaseException, s: SmtpSettings) -> TransportError | None:
    """The one-line error for a session that could not be opened; None to let `exc` through."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError(f"cannot connect to {s.describe()}: {_verify_failure(exc, s)}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return TransportError(f"{s.describe()} refused the login: {_reply(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, (OSError, smtplib.SMTPException)):
        return TransportError(f"cannot connect to {s.describe()}: {exc}")
    return None


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

    def __init__(self, settings: SmtpSettings, context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.context = context or settings.tls_context()
        self.client = self._connect()
        self.pipelining = self.client.has_extn("pipelining")
        self.smtputf8 = self.client.has_extn("smtputf8")
        # smtplib opened the session; the messages go through a buffer of this module's own, so
        # one thread can run many connections (smtplib's reader also costs more than a message).
        self.channel = Channel(self.client.sock, TIMEOUT)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(timeout=TIMEOUT, context=self.context)
        else:
            client = smtplib.SMTP(timeout=TIMEOUT)
        # smtplib checks the certificate against the host it was made with and has no parameter for
        # another name: made without one, it dials the URL's host and checks ?servername=.
        client._host = s.servername or s.host
        try:
            self._open(client)
            return client
        except BaseException as exc:
            client.close()  # a half-open session would keep its socket until collected
            failure = _connection_failure(exc, s)
            if failure is None:
                raise
            raise failure from None

    def _open(self, client: smtplib.SMTP) -> None:
        s = self.settings
        client.connect(s.host, s.port)
        # Commands are small writes answered at once; Nagle's algorithm would hold them back.
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.ehlo()
        if not s.implicit_tls:
            if client.has_extn("starttls"):
                client.starttls(context=self.context)
                client.ehlo()
            elif not s.loopback:
                raise TransportError(f"{s.describe()} does not offer STARTTLS; refusing to send in the clear")
            elif s.tls_asked:
                raise TransportError(f"{s.describe()} does not offer STARTTLS, which ?cafile= or ?servername= "
                                     "ask for; refusing to send in the clear")
        if s.user:
            client.login(s.user, s.password or "")

    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        return drive(self.steps(envelope_from, recipient, message))

    def steps(self, envelope_from: str, recipient: str, message: bytes) -> Steps:
        """One message as steps (transports.stepwise); ends with the server's reply, or raises
        what it said as a Temporary or PermanentFailure or an UncertainDelivery."""
        options = ""
        if not recipient.isascii() or not envelope_from.isascii():
            if not self.smtputf8:
                raise PermanentFailure(f"the server does not offer SMTPUTF8, needed for {recipient}")
            options = " SMTPUTF8"
        try:
            return (yield from self._transact(envelope_from, recipient, message, options))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:  # timeouts and resets are OSErrors
            raise TemporaryFailure(f"connection lost: {exc or type(exc).__name__}", reconnect=True) from None

    def _getreply(self) -> Generator[Wait, None, tuple[int, bytes]]:
        """One (possibly multi-line) reply."""
        lines = []
        while True:
            line = yield from self.channel.line(_LONGEST_LINE)
            if not line:
                raise smtplib.SMTPServerDisconnected("the server closed the connection")
            lines.append(line[4:].strip())
            if line[3:4] != b"-":
                break
        try:
            return int(line[:3]), b" ".join(lines)
        except ValueError:
            return -1, b" ".join(lines)

    def _command_replies(self, envelope_from: str, recipient: str,
                         options: str) -> Generator[Wait, None, list[tuple[int, bytes]]]:
        commands = [f"MAIL FROM:<{envelope_from}>{options}", f"RCPT TO:<{recipient}>", "DATA"]
        if self.pipelining:
            yield from self.channel.write("".join(c + "\r\n" for c in commands).encode("utf-8"))
            pipelined = []
            for _ in commands:
                pipelined.append((yield from self._getreply()))
            return pipelined
        replies = []
        for command in commands:
            yield from self.channel.write((command + "\r\n").encode("utf-8"))
            replies.append((yield from self._getreply()))
            if replies[-1][0] >= 400:
                break
        return replies

    def _transact(self, envelope_from: str, recipient: str, message: bytes, options: str) -> Steps:
        replies = yield from self._command_replies(envelope_from, recipient, options)
        steps = ("MAIL", "RCPT", "DATA")
        for step, (code, text) in zip(steps, replies):
            expected = 354 if step == "DATA" else 250
            if code == expected or (step == "RCPT" and code == 251):
                continue
            if code == 354:  # DATA was accepted although an earlier command failed: end it empty
                yield from self.channel.write(b".\r\n")
                yield from self._getreply()
            yield from self._reset()
            reply = _reply(code, text)
            if code == 421:
                raise TemporaryFailure(reply, reconnect=True)
            if 400 <= code < 500:
                raise TemporaryFailure(reply)
            raise PermanentFailure(reply, bounce=step == "RCPT" and code in BOUNCE_CODES)
        body = _dot_stuffed(message)
        # One write with its terminator: copying the body costs less than a second segment and wake-up.
        yield from self.channel.write(body + (b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
        try:
            code, text = yield from self._getreply()
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

    def _reset(self) -> Generator[Wait, None, None]:
        # What the server said about the message is the outcome. A RSET unanswered in time leaves
        # its late reply to be read as the next command's: the session is closed, and the next
        # message finds it lost and opens another.
        try:
            yield from self.channel.write(b"RSET\r\n")
            yield from self._getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.channel.close(f"the session was closed when RSET got no answer ({exc or type(exc).__name__})")
            self.client.close()

    def close(self) -> None:
        try:
            self.channel.blocking()
            self.client.quit()
        except (smtplib.SMTPException, OSError):
            self.client.close()
