"""Who may read a running preview: requests to the address it listens on, carrying its secret.

The preview shows real readers (names, addresses, their signed unsubscribe links). Binding to
127.0.0.1 keeps other machines out, but not web pages in the user's own browser: a page on
evil.example whose name is made to resolve to 127.0.0.1 (DNS rebinding) reads the preview as
its own origin. Such requests name evil.example in their Host header, so only Host headers
naming the address the preview listens on are answered (421 otherwise). Anything else on the
machine that finds the port (another local page, another user's process) still lacks the
random path prefix of this run, /p/<secret>/, that only the printed URL carries (403 without).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WRONG_HOST = b"This preview answers only at the address it printed when it started.\n"
NO_SECRET = b"This preview answers only at the URL it printed when it started.\n"
_NO_REFERRER = (b"referrer-policy", b"no-referrer")
_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"), _NO_REFERRER]


def new_secret() -> str:
    return secrets.token_urlsafe(18)


def _host_name(host: str) -> str:
    """How a Host header names an address: IPv6 in brackets, names in lower case."""
    host = host.strip("[]").lower()
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def allowed_hosts(listening: Iterable[str], port: int) -> frozenset[str]:
    """The Host headers of requests sent to this preview: the loopback names and the addresses
    it was told to listen on, with its port (browsers leave out port 80)."""
    names = {_host_name(name) for name in (*LOOPBACK_NAMES, *listening)}
    hosts = {f"{name}:{port}" for name in names}
    return frozenset(hosts | names if port == 80 else hosts)


class PreviewGuard:
    """ASGI middleware: a request with another Host gets 421, one without the secret 403, and
    the app sees the rest with /p/<secret> taken off the path. The secret is compared in
    constant time."""

    def __init__(self, app: ASGIApp, secret: str, hosts: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.secret = secret
        self.hosts = hosts  # set once the socket is bound: port 0 becomes a real port there
        self.prefix = f"/p/{secret}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})  # the preview has no websockets
            return
        host = next((value for name, value in scope["headers"] if name == b"host"), b"")
        if host.decode("latin-1").lower() not in self.hosts:
            await _refuse(send, 421, WRONG_HOST)
            return
        path: str = scope["path"]
        _, first, token, *rest = (path.split("/", 3) + ["", ""])[:4]
        if first != "p" or not hmac.compare_digest(token.encode(), self.secret.encode()):
            await _refuse(send, 403, NO_SECRET)
            return
        if not rest[0] and not path.endswith("/"):
            # /p/<secret> without its slash: the page's relative links need it.
            query = scope.get("query_string", b"")
            location = (self.prefix + "/").encode() + (b"?" + query if query else b"")
            await _answer(send, 307, b"", [(b"location", location)])
            return
        inner = "/" + rest[0]
        raw = scope.get("raw_path") or path.encode()
        raw_prefix = self.prefix.encode()
        inner_scope = {**scope, "path": inner,
                       "raw_path": raw[len(raw_prefix):] if raw.startswith(raw_prefix + b"/") else inner.encode()}

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The secret is in every URL of the page: it must not leave in a Referer, not even
                # to the hosts of the email's images.
                message = {**message, "headers": [*message.get("headers", []), _NO_REFERRER]}
            await send(message)

        await self.app(inner_scope, receive, send_private)


async def _refuse(send: Send, status: int, body: bytes) -> None:
    await _answer(send, status, body, [])


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
