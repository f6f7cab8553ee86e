"""A real SMTP server on 127.0.0.1 for tests: aiosmtpd in a thread, told how to misbehave.

aiosmtpd's Controller cannot bind port 0, so the server is made with loop.create_server. It can
also listen on another address (::1), offer STARTTLS (and then require it) or speak TLS from the
first byte like an smtps server, and take logins (certificates for it: tests/tls_server.py).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Behaviour:
    """What the server does; tests change it while the server runs."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply to RCPT, for good
    temporary: dict[str, int] = field(default_factory=dict)  # address -> how many RCPTs get 451 first
    drop_on_rcpt: dict[str, int] = field(default_factory=dict)  # address -> how many RCPTs drop the connection
    answer_421: int = 0  # how many next MAIL commands get 421 and a closed connection
    delay: float = 0.0  # seconds to wait before answering RCPT and DATA
    rset_delay: float = 0.0  # seconds to wait before answering RSET
    pipelining: bool = True


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.server.behaviour.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        behaviour = self.server.behaviour
        if behaviour.answer_421 > 0:
            behaviour.answer_421 -= 1
            await server.push("421 4.3.2 Service shutting down")
            assert server.transport is not None
            server.transport.close()
            return "421 4.3.2 Service shutting down"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        behaviour = self.server.behaviour
        key = address.lower()
        self.server.rcpt_attempts[key] += 1
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.drop_on_rcpt.get(key, 0) > 0:
            behaviour.drop_on_rcpt[key] -= 1
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 Connection dropped"
        if key in behaviour.rcpt_replies:
            return behaviour.rcpt_replies[key]
        if behaviour.temporary.get(key, 0) > 0:
            behaviour.temporary[key] -= 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.behaviour.rset_delay:
            await asyncio.sleep(self.server.behaviour.rset_delay)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.behaviour.delay:
            await asyncio.sleep(self.server.behaviour.delay)
        data = envelope.original_content or b""
        with self.server.lock:
            self.server.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), data))
        return "250 2.0.0 Message accepted"


class SmtpTestServer:
    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 logins: dict[str, str] | None = None) -> None:
        """`tls` with implicit_tls: TLS from the first byte (smtps); without: STARTTLS, required.
        `logins`: user -> password it accepts; AUTH is offered only over TLS, as servers do."""
        self.host = host
        self.tls = tls
        self.implicit_tls = implicit_tls and tls is not None
        self.logins = logins
        self.logged_in: list[str] = []
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Any = None
        self.port = 0

    def start(self) -> SmtpTestServer:
        self.thread.start()
        handler = _Handler(self)
        starttls = self.tls if not self.implicit_tls else None
        options: dict[str, Any] = {"tls_context": starttls, "require_starttls": starttls is not None}
        if self.logins is not None:
            # aiosmtpd knows only its own STARTTLS; behind implicit TLS it must be told AUTH is safe.
            options.update(authenticator=self._authenticate, auth_require_tls=not self.implicit_tls)

        async def create() -> Any:
            return await self.loop.create_server(
                lambda: SMTP(handler, enable_SMTPUTF8=True, decode_data=False, hostname="test.smtp", **options),
                self.host, 0, ssl=self.tls if self.implicit_tls else None)

        self.server = asyncio.run_coroutine_threadsafe(create(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert self.logins is not None
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self.logins.get(user) == password:
                self.logged_in.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{host}:{self.port}"

    def recipients(self) -> Counter[str]:
        """How many messages each address got."""
        with self.lock:
            return Counter(r.lower() for message in self.received for r in message.recipients)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
