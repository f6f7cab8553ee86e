"""`campaign serve`: the public unsubscribe and preferences pages that every email links to.

A GET never changes anything, because link scanners and mail previews fetch every URL in a
message. Changes come only by POST: a mail client's one-click unsubscribe (RFC 8058), the
button on the confirmation page, and the preferences form.

For a production server, `create_app` is an app factory:
    CAMPAIGN_WORKSPACE=/srv/clinic uvicorn --factory pipeline.web.app:create_app --port 8080
"""

from __future__ import annotations

import email
import email.policy
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.engine import Connection
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pipeline.audience import preferences
from pipeline.audience.subscribers import Subscriber
from pipeline.audience.tokens import LinkData, Tokens
from pipeline.db.engine import Store, default_url
from pipeline.errors import InvalidToken
from pipeline.settings.workspace import Workspace, load_workspace
from pipeline.web.pages import Pages

HEADERS = {
    "Cache-Control": "no-store",  # each page shows one reader's data, as it is now
    "X-Robots-Tag": "noindex",
    # The token in the URL must not travel to the brand's website, or anywhere else, as a Referer.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
}
MAX_FORM = 64 * 1024  # the forms hold a few topic names; a larger body is not one of ours

Form = dict[str, list[str]]
T = TypeVar("T")


def parse_form(content_type: str, body: bytes) -> Form:
    """The fields of a form body. RFC 8058 lets mail clients send one-click unsubscribes as
    multipart/form-data or urlencoded; anything unreadable gives no fields."""
    form: Form = {}
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        message = email.message_from_bytes(head + body, policy=email.policy.HTTP)
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                form.setdefault(name, []).append(payload.decode("utf-8", "replace"))
        return form
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


def _page(html: str, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(html, status, headers={**HEADERS, **(headers or {})})


class Site:
    """The pages' request handlers over one workspace, database and token secret."""

    def __init__(self, workspace: Workspace, store: Store, tokens: Tokens) -> None:
        self.workspace = workspace
        self.store = store
        self.tokens = tokens
        self.pages = Pages(workspace)

    def _link(self, request: Request) -> LinkData | None:
        try:
            return self.tokens.read(request.path_params["token"])
        except InvalidToken:
            return None

    async def _read(self, link: LinkData) -> Subscriber | None:
        def look_up() -> Subscriber | None:
            with self.store.reading() as conn:
                return preferences.reader(conn, self.tokens, link)

        return await run_in_threadpool(look_up)

    async def _write(self, change: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.store.transaction() as conn:
                return change(conn)

        return await run_in_threadpool(run)

    async def _form(self, request: Request) -> Form:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise HTTPException(413)
        return parse_form(request.headers.get("content-type", ""), bytes(body))

    def _invalid(self) -> Response:
        return _page(self.pages.invalid_link(), 400)

    async def unsubscribe(self, request: Request) -> Response:
        link = self._link(request)
        if link is None:
            return self._invalid()
        if request.method == "POST":
            # The confirmation page's form says confirm; everything else that POSTs here is a mail
            # client's unsubscribe button, whatever its body looks like.
            source = preferences.CONFIRM if "confirm" in await self._form(request) else preferences.ONE_CLICK
            subscriber = await self._write(lambda conn: preferences.unsubscribe(conn, self.tokens, link, source))
            return _page(self.pages.unsubscribed(subscriber))
        subscriber = await self._read(link)
        if subscriber is None or subscriber.status != "subscribed":
            return _page(self.pages.unsubscribed(subscriber))
        # Relative, so the link works at whatever path a reverse proxy serves these pages.
        return _page(self.pages.confirm(subscriber, f"../preferences/{request.path_params['token']}"))

    async def preferences(self, request: Request) -> Response:
        link = self._link(request)
        if link is None:
            return self._invalid()
        topics = self.workspace.topics
        saved = request.method == "POST"
        if saved:
            form = await self._form(request)
            if form.get("action") == ["unsubscribe"]:
                left = await self._write(lambda conn: preferences.unsubscribe(conn, self.tokens, link, preferences.PREFERENCES))
                return _page(self.pages.unsubscribed(left))
            chosen = form.get("topic", [])
            change = await self._write(lambda conn: preferences.choose_topics(conn, self.tokens, link, topics, chosen))
            subscriber = change.subscriber
        else:
            subscriber = await self._read(link)
        if subscriber is None or subscriber.status != "subscribed":
            return _page(self.pages.unsubscribed(subscriber))
        return _page(self.pages.preferences(subscriber, topics, saved))

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = exc.headers if isinstance(exc, HTTPException) else None
        return _page(self.pages.error(status), status, headers)


def base_path(workspace: Workspace) -> str:
    """The path of [unsubscribe] base_url: "/email" for https://clinic.example/email."""
    return urlsplit(workspace.unsubscribe_url).path.rstrip("/")


def create_app(workspace: Workspace | None = None, store: Store | None = None,
               tokens: Tokens | None = None) -> Starlette:
    """The pages as an ASGI app.

    Called with no arguments, as `uvicorn --factory pipeline.web.app:create_app` does, it reads the
    workspace named by CAMPAIGN_WORKSPACE (default: the current folder), the database named by
    CAMPAIGN_DB (default: its campaign.db) and the secret that signed the links (CAMPAIGN_SECRET
    or the workspace's .campaign-secret), and closes the database when the server stops.
    """
    workspace = workspace or load_workspace(Path(os.environ.get("CAMPAIGN_WORKSPACE") or "."))
    owned = store is None
    store = store or Store(os.environ.get("CAMPAIGN_DB") or default_url(workspace.root))
    site = Site(workspace, store, tokens or Tokens.of_workspace(workspace.root))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                store.close()

    # The pages answer both at the root and under base_url's path, so a reverse proxy may pass
    # https://clinic.example/email/unsubscribe/... through as it is or with /email taken off.
    routes = []
    for prefix in dict.fromkeys(["", base_path(workspace)]):
        routes += [Route(f"{prefix}/unsubscribe/{{token}}", site.unsubscribe, methods=["GET", "POST"]),
                   Route(f"{prefix}/preferences/{{token}}", site.preferences, methods=["GET", "POST"])]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: site.http_error, Exception: site.http_error})
